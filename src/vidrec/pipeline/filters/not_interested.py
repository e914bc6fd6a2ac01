"""filter/not_interested — videos and creators the user said "not interested" to.

CLOSED: showing them again is a product failure, so a fault here serves the fallback."""

from __future__ import annotations

from vidrec.pipeline.base import Candidate, FilterResult, Policy, RequestContext
from vidrec.pipeline.filters.partition import partition


class NotInterested:
    name = "not_interested"
    policy = Policy.CLOSED
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> FilterResult:
        user = ctx.user
        if user is None:
            return FilterResult(list(cands), [])
        videos, creators = user.not_interested_videos, user.not_interested_creators
        return partition(cands, lambda c: c.video_id in videos or c.creator_id in creators)
