"""source/trending — what is popular in the request's (or the user's) region."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import to_candidates


def region_of(ctx: RequestContext, default: str) -> str:
    """Explicit request region, else the user's, else the deployment default."""
    return ctx.region or (ctx.user.region if ctx.user is not None else "") or default


class Trending:
    name = "trending"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int, default_region: str) -> None:
        self.retrieval, self.k, self.default_region = retrieval, k, default_region

    async def __call__(self, ctx: RequestContext) -> Candidates:
        region = region_of(ctx, self.default_region)
        return to_candidates(await self.retrieval.trending(region, self.k), self.name, region)
