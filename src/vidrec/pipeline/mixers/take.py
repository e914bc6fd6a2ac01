"""mixer/take — cut the list to the requested count."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates


class Take:
    name = "take"
    policy = Policy.OPEN

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        return cands.head(ctx.count)
