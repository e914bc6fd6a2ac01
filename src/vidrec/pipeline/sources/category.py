"""source/category — popular videos of one category (category surface)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidrec.contracts.catalogue import Catalogue
from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource, required


class CategorySource(RetrievalSource):
    name = "category"
    retriever = "by_category"

    def query(self, ctx: RequestContext) -> Query | None:
        return Query(category=required(ctx.category, "category", "category"))

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return f"popular in {found.category if found.category >= 0 else ctx.category}"


@dataclass(frozen=True)
class ByCategory:
    rows: np.ndarray  # catalogue rows by category, most popular first within one
    category: np.ndarray  # category of each of those rows (sorted)


def by_category_order(cat: Catalogue) -> ByCategory:
    rows = np.lexsort((-cat.popularity, cat.category))
    return ByCategory(rows, cat.category[rows])


@retriever("by_category", prepare=by_category_order)
def by_category(corpus: Corpus, query: Query, k: int) -> Retrieved:
    order: ByCategory = corpus.prepared("by_category")
    lo = int(np.searchsorted(order.category, query.category, side="left"))
    hi = int(np.searchsorted(order.category, query.category, side="right"))
    rows = order.rows[lo : min(hi, lo + k)]
    return corpus.rows(rows, corpus.catalogue.popularity[rows])
