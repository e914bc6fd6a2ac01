"""source/category — popular videos of one category (category surface)."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import required, to_candidates


class CategorySource:
    name = "category"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    async def __call__(self, ctx: RequestContext) -> Candidates:
        category = required(ctx.category, "category", "category")
        return to_candidates(await self.retrieval.by_category(category, self.k), self.name)
