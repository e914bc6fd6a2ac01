"""scorer/triton_ranker — one ranker call for the top candidates; heads combined by weights.

The top ``top_n`` candidates by retrieval score that have features go to the ranker in ONE
``RankerClient.score`` call (Triton never splits a request). ``score = head_scores @ weights``
(>= 0). Everyone else — no features, beyond ``top_n``, or an unknown user — keeps the
retrieval order below the ranked ones (see :mod:`.retrieval_order`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidrec.features import assemble, context_vectors
from vidrec.pipeline.base import DependencyError, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RankerClient
from vidrec.pipeline.scorers.retrieval_order import apply_retrieval_order
from vidrec.schema import RANKER_HEADS


def check_head_weights(weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (len(RANKER_HEADS),) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(
            f"head_weights: need {len(RANKER_HEADS)} finite non-negative weights "
            f"({', '.join(RANKER_HEADS)}), got {tuple(weights)}"
        )
    return w


class TritonRanker:
    name = "triton_ranker"
    policy = Policy.OPEN

    def __init__(self, ranker: RankerClient, head_weights: Sequence[float], top_n: int) -> None:
        if top_n < 1:
            raise ValueError(f"top_n: must be >= 1, got {top_n}")
        self.ranker, self.weights, self.top_n = ranker, check_head_weights(head_weights), top_n

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        cands = apply_retrieval_order(cands)  # the default for everything not ranked below
        user = ctx.user
        if user is None or not user.known or user.vector is None or cands.features is None:
            return cands
        with_features = np.flatnonzero(cands.has_features)
        # apply_retrieval_order gave scores decreasing with retrieval rank: best first.
        order = np.argsort(-cands.score[with_features], kind="stable")
        picked = with_features[order][: self.top_n]
        if not picked.size:
            return cands
        n = picked.size
        video = cands.features[picked]
        users = np.broadcast_to(user.vector.astype(np.float32), (n, user.vector.shape[-1]))
        context = context_vectors(ctx.now_ms, [user.device], user.session_depth)
        x = assemble(users, video, np.broadcast_to(context, (n, context.shape[1])), ctx.now_ms)
        answer = await self.ranker.score(x, ctx.variant)
        ctx.variant = answer.variant  # what answered labels the request's metrics and effects
        heads = np.asarray(answer.heads, dtype=np.float32)
        if heads.shape != (n, len(RANKER_HEADS)) or not np.all(np.isfinite(heads)):
            raise DependencyError("error", f"ranker returned {heads.shape} for {n} rows")
        head_scores = np.zeros((len(cands), heads.shape[1]), np.float32)
        head_scores[picked] = heads
        ranked = np.zeros(len(cands), bool)
        ranked[picked] = True
        score = cands.score.copy()
        score[picked] = heads @ self.weights
        return cands.with_(head_scores=head_scores, ranked=ranked, score=score)
