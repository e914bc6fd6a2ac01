"""filter/seen — drop what the user already saw or just watched.

OPEN: a stale seen set costs a repeat, not a safety problem."""

from __future__ import annotations

from vidrec.pipeline.base import FilterResult, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.filters.membership import member


class Seen:
    name = "seen"
    policy = Policy.OPEN

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult:
        user = ctx.user
        if user is None or not (user.seen or user.recent_watches):
            return FilterResult.keep_all(cands)
        drop = member(cands.video_id, user.seen | frozenset(user.recent_watches))
        return FilterResult.partition(cands, drop)
