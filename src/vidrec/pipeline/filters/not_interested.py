"""filter/not_interested — videos and creators the user said "not interested" to.

CLOSED: showing them again is a product failure, so a fault here serves the fallback."""

from __future__ import annotations

from vidrec.pipeline.base import FilterResult, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.filters.membership import member


class NotInterested:
    name = "not_interested"
    policy = Policy.CLOSED

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult:
        user = ctx.user
        if user is None:
            return FilterResult.keep_all(cands)
        drop = member(cands.video_id, user.not_interested_videos)
        drop |= member(cands.creator_id, user.not_interested_creators)
        return FilterResult.partition(cands, drop)
