"""mixer/explain — why each item is here, in the words of the source that found it.

Each source carries its own sentence (``explain`` on its class,
:class:`~vidrec.pipeline.sources.base.RetrievalSource`); anchors are video ids, which the API
layer may map to captions."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.sources.base import Found, explanation


class Explain:
    """Labels the rows it is given: it runs after Take, on the served page only."""

    name = "explain"
    policy = Policy.OPEN

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        found_by = [cands.labels[i] for i in cands.label.tolist()]
        text = tuple(
            explanation(Found(source, region, anchor, category), ctx)
            for (source, region), anchor, category in zip(
                found_by, cands.anchor_video_id.tolist(), cands.category.tolist(), strict=True
            )
        )
        return cands.with_(explanation=text)
