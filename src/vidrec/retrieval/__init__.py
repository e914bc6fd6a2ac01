"""Candidate retrieval: the approximate-nearest-neighbour index over item embeddings, and the
item-item neighbour lists precomputed from it."""

from vidrec.retrieval.index import (
    AnnIndex,
    IndexParams,
    build_index,
    exact_index,
    faiss_threads,
    index_params_for,
    make_index,
    recall_at_k,
    set_faiss_threads,
)
from vidrec.retrieval.neighbours import NeighbourLists, build_neighbour_lists

__all__ = [
    "AnnIndex",
    "IndexParams",
    "NeighbourLists",
    "build_index",
    "build_neighbour_lists",
    "exact_index",
    "faiss_threads",
    "index_params_for",
    "make_index",
    "recall_at_k",
    "set_faiss_threads",
]
