"""source/two_tower — user embedding → ANN over item embeddings (the personalised bulk)."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import to_candidates


class TwoTower:
    name = "two_tower"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    async def __call__(self, ctx: RequestContext) -> Candidates:
        user = ctx.user
        if user is None or not user.known or user.vector is None:
            # No embedding to search with: cold start is the surface's business.
            return Candidates.empty()
        found = await self.retrieval.two_tower(user.vector, user.recent_watches, self.k)
        return to_candidates(found, self.name)
