"""source/fresh — recent uploads: cold start for videos, material for exploration slots."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidrec.contracts.catalogue import Catalogue
from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource

HOUR_MS = 3_600_000


class Fresh(RetrievalSource):
    name = "fresh"

    def query(self, ctx: RequestContext) -> Query | None:
        return Query(now_ms=ctx.now_ms)

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        # The retrieval falls back to the newest overall when nothing is young enough.
        return "new" if found.fresh else "among the newest uploads"


@dataclass(frozen=True)
class NewestFirst:
    rows: np.ndarray  # catalogue rows, newest first
    age_key: np.ndarray  # -upload_ts of those rows: ascending, for searchsorted


def newest_first(cat: Catalogue) -> NewestFirst:
    rows = np.lexsort((cat.video_id, -cat.upload_ts))
    return NewestFirst(rows, -cat.upload_ts[rows])


@retriever("fresh", prepare=newest_first)
def fresh(corpus: Corpus, query: Query, k: int) -> Retrieved:
    """Newest uploads first within ``fresh_max_age_h``; the newest overall if none are."""
    order: NewestFirst = corpus.prepared("fresh")
    cfg, now_ms = corpus.cfg, query.now_ms
    # Newest first, so uploads at or before now start at `lo` (the key is precomputed:
    # negating a million timestamps per request cost more than the rest of the source).
    lo = int(np.searchsorted(order.age_key, -now_ms, side="left"))
    oldest = now_ms - int(cfg.fresh_max_age_h * HOUR_MS)
    hi = int(np.searchsorted(order.age_key, -oldest, side="right"))
    rows = order.rows[lo : hi if hi > lo else lo + k][:k]
    age_h = (now_ms - corpus.catalogue.upload_ts[rows]) / HOUR_MS
    return corpus.rows(rows, 0.5 ** (age_h / cfg.freshness_half_life_h))
