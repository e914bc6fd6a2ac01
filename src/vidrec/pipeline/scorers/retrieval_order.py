"""Retrieval order as a score: the order served when the ranker is late, down or has no input.

Model scores are ``head_scores @ weights`` with calibrated probabilities and non-negative
weights, so they are >= 0. Unranked candidates get ``-(rank + 1) / (n + 1)`` in (-1, 0): any
ranked item sorts above every unranked one, and no two scores tie. Retrieval scores of different
sources are not comparable (cosine similarity vs decayed click counts), so the order
interleaves sources: every source's best, then every source's second, ... (sources in the order
they first appear, i.e. the surface's order).
"""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates


def retrieval_order_scores(retrieval_scores: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Scores in (-1, 0): round-robin over sources by within-source retrieval rank.

    ``sources`` holds an integer per candidate (its source's order of first appearance).
    """
    n = len(retrieval_scores)
    by_score = np.lexsort((-retrieval_scores, sources))  # grouped by source, best first
    group_start = np.searchsorted(sources[by_score], sources[by_score], side="left")
    rank_in_source = np.empty(n, dtype=np.int64)
    rank_in_source[by_score] = np.arange(n) - group_start
    order = np.lexsort((sources, rank_in_source))  # every source's 1st, then 2nd, ...
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return -(rank + 1.0) / (n + 1.0)


def apply_retrieval_order(cands: Candidates) -> Candidates:
    scores = retrieval_order_scores(cands.retrieval_score, cands.source_codes())
    return cands.with_(score=scores)


class RetrievalOrder:
    """scorer/retrieval_order — the degraded order (the runner applies it when a scorer fails)."""

    name = "retrieval_order"
    policy = Policy.OPEN

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        return apply_retrieval_order(cands)
