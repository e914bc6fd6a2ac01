"""mixer/explain — why each item is here, in the words of the source that found it.

Each source carries its own sentence (``explain`` on its class,
:class:`~vidrec.pipeline.sources.base.RetrievalSource`); anchors are video ids, which the API
layer may map to captions. A sentence must be true of the request that produced it, so each
source sees what it found (:class:`~vidrec.pipeline.sources.base.Found`: the anchor, the
region searched, the retrieval score, whether the upload is fresh) and the request (the
user's history), and claims no more than those show."""

from __future__ import annotations

from vidrec.config import ServingConfig
from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.mixers.freshness import age_hours
from vidrec.pipeline.sources.base import Found, explanation

FRESH_MAX_AGE_H = ServingConfig().fresh_max_age_h


class Explain:
    """Labels the rows it is given: it runs after Take, on the served page only."""

    name = "explain"
    policy = Policy.OPEN

    def __init__(self, fresh_max_age_h: float = FRESH_MAX_AGE_H) -> None:
        self.fresh_max_age_h = fresh_max_age_h

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        found_by = [cands.labels[i] for i in cands.label.tolist()]
        fresh = (age_hours(cands, ctx.now_ms) < self.fresh_max_age_h).tolist()
        text = tuple(
            explanation(Found(source, region, anchor, category, score, young), ctx)
            for (source, region), anchor, category, score, young in zip(
                found_by,
                cands.anchor_video_id.tolist(),
                cands.category.tolist(),
                cands.retrieval_score.tolist(),
                fresh,
                strict=True,
            )
        )
        return cands.with_(explanation=text)
