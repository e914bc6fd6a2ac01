"""source/category — popular videos of one category (category surface)."""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, Grouped, RetrievalSource, required


class CategorySource(RetrievalSource):
    name = "category"
    retriever = "by_category"

    def query(self, ctx: RequestContext) -> Query | None:
        return Query(category=required(ctx.category, "category", "category"))

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        """ "popular" only for an item people watched (its popularity, the retrieval score, is
        above 0) that is not a fresh upload: a new video is listed for its category, not for
        an engagement it has not had yet."""
        category = found.category if found.category >= 0 else ctx.category
        if found.fresh:
            return f"new in category {category}"
        return f"{'popular in' if found.score > 0 else 'in'} category {category}"


@retriever("by_category", prepare=lambda cat: Grouped.by(cat.category, cat.popularity))
def by_category(corpus: Corpus, query: Query, k: int) -> Retrieved:
    order: Grouped = corpus.prepared("by_category")
    lo = int(np.searchsorted(order.key, query.category, side="left"))
    hi = int(np.searchsorted(order.key, query.category, side="right"))
    rows = order.rows[lo : min(hi, lo + k)]
    return corpus.rows(rows, corpus.catalogue.popularity[rows])
