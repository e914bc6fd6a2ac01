"""source/trending — what is popular in the request's (or the user's) region.

A region the request names that has no trending list (serving knows a region only by its
list) is not answered silently with other videos: the source fails with reason
``unknown_region``, so the response is flagged degraded (``source/trending:unknown_region``)
and the page is what the other sources found, or the surface's fallback.
"""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import DependencyError, RequestContext
from vidrec.pipeline.candidates import Candidates, Retrieved
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource

_NONE = (np.zeros(0, np.int64), np.zeros(0))


def region_of(ctx: RequestContext, default: str) -> str:
    """Explicit request region, else the user's, else the deployment default."""
    return ctx.region or (ctx.user.region if ctx.user is not None else "") or default


class Trending(RetrievalSource):
    name = "trending"

    def __init__(self, retrieval: RetrievalClient, k: int, default_region: str) -> None:
        super().__init__(retrieval, k)
        self.default_region = default_region

    def query(self, ctx: RequestContext) -> Query | None:
        return Query(region=region_of(ctx, self.default_region))

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return f"trending in {found.region or ctx.region or 'your region'}"

    async def __call__(self, ctx: RequestContext) -> Candidates:
        found = await super().__call__(ctx)
        if not len(found) and ctx.region:  # the user's or the default region: not asked for
            raise DependencyError("unknown_region", f"no trending list for {ctx.region!r}")
        return found


@retriever("trending")
def trending(corpus: Corpus, query: Query, k: int) -> Retrieved:
    """Top videos by decayed engagement in the region (the artefact's log, then live)."""
    ids, scores = corpus.trending.get(query.region, _NONE)
    return corpus.records(ids[:k], scores[:k])
