"""filter/blocked_creators — creators the user blocked. CLOSED, like not-interested."""

from __future__ import annotations

from vidrec.pipeline.base import FilterResult, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.filters.membership import member


class BlockedCreators:
    name = "blocked_creators"
    policy = Policy.CLOSED

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult:
        if ctx.user is None or not ctx.user.blocked_creators:
            return FilterResult.keep_all(cands)
        return FilterResult.partition(cands, member(cands.creator_id, ctx.user.blocked_creators))
