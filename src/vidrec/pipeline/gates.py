"""Wrappers that switch a stage by request state, so the stage itself has no ``if`` for it."""

from __future__ import annotations

from vidrec.pipeline.base import Hydrator, RequestContext
from vidrec.pipeline.candidates import Candidates


class KnownUserOnly:
    """Runs the wrapped hydrator only for a known user (anonymous requests are not ranked,
    so fetching their candidates' features would be wasted); name ``known_<name>``."""

    def __init__(self, inner: Hydrator) -> None:
        self.inner = inner
        self.name = f"known_{inner.name}"
        self.policy = inner.policy

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        if ctx.user is None or not ctx.user.known:
            return cands
        return await self.inner(ctx, cands)
