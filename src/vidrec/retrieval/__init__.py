"""Candidate retrieval: the approximate-nearest-neighbour index over item embeddings."""

from vidrec.retrieval.index import (
    AnnIndex,
    IndexParams,
    build_index,
    exact_index,
    index_params_for,
    make_index,
    recall_at_k,
)

__all__ = [
    "AnnIndex",
    "IndexParams",
    "build_index",
    "exact_index",
    "index_params_for",
    "make_index",
    "recall_at_k",
]
