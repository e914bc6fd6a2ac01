"""filter/blocked_creators — creators the user blocked. CLOSED, like not-interested."""

from __future__ import annotations

from vidrec.pipeline.base import Candidate, FilterResult, Policy, RequestContext
from vidrec.pipeline.filters.partition import partition


class BlockedCreators:
    name = "blocked_creators"
    policy = Policy.CLOSED
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> FilterResult:
        if ctx.user is None or not ctx.user.blocked_creators:
            return FilterResult(list(cands), [])
        blocked = ctx.user.blocked_creators
        return partition(cands, lambda c: c.creator_id in blocked)
