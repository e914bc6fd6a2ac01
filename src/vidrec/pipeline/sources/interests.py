"""source/interests — popular videos of the categories a new user picked at onboarding.

Only the cold-start answer uses it: a known user's history says more than a sign-up form.
Nothing is asked of retrieval when the request names no interests.
"""

from __future__ import annotations

import asyncio

import numpy as np

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Candidates, Retrieved
from vidrec.pipeline.retrievers import Query
from vidrec.pipeline.sources.base import Found, RetrievalSource


class Interests(RetrievalSource):
    name = "interests"
    retriever = "by_category"  # the category source's retrieval, once per picked category

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return f"because you picked category {found.category}"

    async def __call__(self, ctx: RequestContext) -> Candidates:
        if not ctx.interests:
            return Candidates.empty()
        per = max(1, self.k // len(ctx.interests))
        found = await asyncio.gather(
            *(self.retrieval.retrieve(self.retriever, Query(category=c), per)
              for c in ctx.interests)
        )  # fmt: skip
        # Interleave so every picked category reaches the first page (each category's 1st,
        # then each one's 2nd, ...), as deep as the shortest list goes.
        depth = min(len(f) for f in found)
        stacked = Retrieved.concat([f.take(slice(0, depth)) for f in found])
        order = (np.arange(len(found))[None, :] * depth + np.arange(depth)[:, None]).ravel()
        return Candidates.from_retrieved(stacked.take(order), self.name)
