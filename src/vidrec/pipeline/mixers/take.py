"""mixer/take — cut the list to the requested count."""

from __future__ import annotations

from vidrec.pipeline.base import Candidate, Policy, RequestContext


class Take:
    name = "take"
    policy = Policy.OPEN
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> list[Candidate]:
        return cands[: ctx.count]
