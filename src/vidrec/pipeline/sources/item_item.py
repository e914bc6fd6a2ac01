"""source/item_item — ANN neighbours of the last watched videos ("because you watched …")."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import recent_watches, to_candidates


class ItemItem:
    name = "item_item"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    async def __call__(self, ctx: RequestContext) -> Candidates:
        seeds = recent_watches(ctx)
        if not seeds:
            return Candidates.empty()
        return to_candidates(await self.retrieval.related(seeds, self.k), self.name)
