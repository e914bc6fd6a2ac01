"""Retrieval order as a score: the order served when the ranker is late, down or has no input.

Model scores are ``head_scores @ weights`` with calibrated probabilities and non-negative
weights, so they are >= 0. Unranked candidates get ``-(rank + 1) / (n + 1)`` in (-1, 0) by
descending retrieval score: any ranked item sorts above every unranked one, unranked items keep
their retrieval order, and no two scores tie.
"""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import Candidate, Policy, RequestContext


def retrieval_order_scores(retrieval_scores: np.ndarray) -> np.ndarray:
    """Scores in (-1, 0), decreasing with retrieval rank (stable for equal retrieval scores)."""
    n = len(retrieval_scores)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-retrieval_scores, kind="stable")] = np.arange(n)
    return -(rank + 1.0) / (n + 1.0)


def apply_retrieval_order(cands: list[Candidate]) -> list[Candidate]:
    scores = retrieval_order_scores(np.fromiter((c.retrieval_score for c in cands), float))
    for c, s in zip(cands, scores.tolist(), strict=True):
        c.score = s
    return list(cands)


class RetrievalOrder:
    """scorer/retrieval_order — the degraded order (the runner applies it when a scorer fails)."""

    name = "retrieval_order"
    policy = Policy.OPEN
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> list[Candidate]:
        return apply_retrieval_order(cands)
