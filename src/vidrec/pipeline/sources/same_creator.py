"""source/same_creator — more videos from the creators of the seed videos.

Seeds are the user's recent watches (home) or the anchor video (related surface)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import (
    Found,
    Grouped,
    RetrievalSource,
    interleaved,
    recent_watches,
    unique_in_order,
    watched,
)


class SameCreator(RetrievalSource):
    name = "same_creator"

    def __init__(
        self, retrieval: RetrievalClient, k: int, seeds: Literal["history", "anchor"] = "history"
    ) -> None:
        super().__init__(retrieval, k)
        self.seeds = seeds

    def query(self, ctx: RequestContext) -> Query | None:
        if self.seeds == "anchor":
            ids: tuple[int, ...] = () if ctx.anchor_video_id is None else (ctx.anchor_video_id,)
        else:
            ids = recent_watches(ctx)
        return Query(video_ids=ids) if ids else None

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        """The seed decides: the video on screen, a video in the user's history, or neither
        (no claim about the viewer)."""
        seed = found.anchor_video_id
        if seed >= 0 and seed == ctx.anchor_video_id:
            return f"more from the creator of {seed}"
        if watched(ctx, seed):
            return "more from a creator you watch"
        return "more from this creator"


@retriever("same_creator", prepare=lambda cat: Grouped.by(cat.creator_id, cat.popularity))
def same_creator(corpus: Corpus, query: Query, k: int) -> Retrieved:
    """Other videos by the seeds' creators, most popular first, creators interleaved."""
    order: Grouped = corpus.prepared("same_creator")
    cat = corpus.catalogue
    anchors = unique_in_order(query.video_ids)
    rows, known = cat.rows(anchors)
    anchors, creators = anchors[known], cat.creator_id[rows[known]]
    _, first = np.unique(creators, return_index=True)
    anchors, creators = anchors[np.sort(first)], creators[np.sort(first)]
    lo = np.searchsorted(order.key, creators, side="left")
    hi = np.minimum(np.searchsorted(order.key, creators, side="right"), lo + k + 1)
    counts = hi - lo
    if counts.sum() == 0:
        return Retrieved.empty()
    group = np.repeat(np.arange(creators.size), counts)
    rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    picked = order.rows[lo[group] + rank]
    keep = ~np.isin(cat.video_id[picked], anchors)
    picked, group, rank = picked[keep], group[keep], rank[keep]
    top = interleaved(rank, cat.popularity[picked])[:k]
    return corpus.records(
        cat.video_id[picked[top]], cat.popularity[picked[top]], anchors[group[top]]
    )
