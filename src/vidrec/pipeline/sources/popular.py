"""retrieval/popular — the catalogue by popularity: the fallback's list (not a feed source)."""

from __future__ import annotations

import numpy as np

from vidrec.contracts.catalogue import Catalogue
from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource

POPULAR_NOW = "popular now"


class Popular(RetrievalSource):
    """The popular list as a source (the fallback, :class:`~vidrec.pipeline.fallbacks.PopularList`,
    caches the same retrieval)."""

    name = "popular"

    def query(self, ctx: RequestContext) -> Query | None:
        return Query()

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return POPULAR_NOW


def most_popular_first(cat: Catalogue) -> np.ndarray:
    return np.lexsort((cat.video_id, -cat.popularity))


@retriever("popular", prepare=most_popular_first)
def popular(corpus: Corpus, query: Query, k: int) -> Retrieved:
    rows = corpus.prepared("popular")[:k]
    return corpus.rows(rows, corpus.catalogue.popularity[rows])
