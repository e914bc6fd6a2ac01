"""filter/seen — drop what the user already saw or just watched.

OPEN: a stale seen set costs a repeat, not a safety problem."""

from __future__ import annotations

from vidrec.pipeline.base import Candidate, FilterResult, Policy, RequestContext
from vidrec.pipeline.filters.partition import partition


class Seen:
    name = "seen"
    policy = Policy.OPEN
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> FilterResult:
        user = ctx.user
        if user is None or not (user.seen or user.recent_watches):
            return FilterResult(list(cands), [])
        seen = user.seen | frozenset(user.recent_watches)
        return partition(cands, lambda c: c.video_id in seen)
