"""source/fresh — recent uploads: cold start for videos, material for exploration slots."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import to_candidates


class Fresh:
    name = "fresh"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    async def __call__(self, ctx: RequestContext) -> Candidates:
        return to_candidates(await self.retrieval.fresh(self.k, ctx.now_ms), self.name)
