"""source/interests — popular videos of the categories a new user picked at onboarding.

Only the cold-start answer uses it: a known user's history says more than a sign-up form.
Nothing is asked of retrieval when the request names no interests.
"""

from __future__ import annotations

import asyncio

from vidrec.pipeline.base import Candidate, Policy, RequestContext
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import to_candidates


class Interests:
    name = "interests"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    async def __call__(self, ctx: RequestContext) -> list[Candidate]:
        if not ctx.interests:
            return []
        per = max(1, self.k // len(ctx.interests))
        found = await asyncio.gather(*(self.retrieval.by_category(c, per) for c in ctx.interests))
        # Interleave so every picked category reaches the first page.
        merged = [v for rank in zip(*found, strict=False) for v in rank]
        return to_candidates(merged, self.name)
