"""source/item_item — neighbours of the last watched videos ("because you watched …").

Retrieval ``related`` (shared with the related surface's anchor source) gathers precomputed
neighbour lists (:class:`~vidrec.retrieval.NeighbourLists`, built offline with the index) and
searches the index only for anchors without one.
"""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import (
    Found,
    RetrievalSource,
    because_you_watched,
    first_occurrences,
    interleaved,
    recent_watches,
    unique_in_order,
)


class ItemItem(RetrievalSource):
    name = "item_item"
    retriever = "related"

    def query(self, ctx: RequestContext) -> Query | None:
        seeds = recent_watches(ctx)
        return Query(video_ids=seeds) if seeds else None

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return because_you_watched(found, ctx) or "recommended for you"


def _needs_search(corpus: Corpus, query: Query, k: int) -> bool:
    """On the event loop when every anchor has a list (a gather costs microseconds, less than
    the thread hop); in a worker thread when an index search (milliseconds) is needed."""
    lists = corpus.neighbours
    anchors = np.asarray(query.video_ids, dtype=np.int64)
    return lists is None or lists.k < k or not bool(lists.has(anchors).all())


@retriever("related", blocking=_needs_search)
def related(corpus: Corpus, query: Query, k: int) -> Retrieved:
    """Neighbours of the anchors, interleaved by rank: from the precomputed lists where an
    anchor has one (and they are long enough), else from one index search per anchor."""
    anchors = unique_in_order(query.video_ids)
    pos = np.clip(np.searchsorted(corpus.emb_sorted, anchors), 0, corpus.emb_sorted.size - 1)
    found = corpus.emb_sorted[pos] == anchors
    anchors, pos = anchors[found], pos[found]
    if anchors.size == 0 or k < 1:
        return Retrieved.empty()
    lists = corpus.neighbours
    listed = (
        lists.has(anchors) if lists is not None and lists.k >= k else np.zeros(anchors.size, bool)
    )
    parts = [lists.gather(anchors[listed], k)] if lists is not None and listed.any() else []
    if not listed.all():
        queries = corpus.item_embeddings[corpus.emb_order[pos[~listed]]]
        ids, scores = corpus.search(queries, k + 1)  # +1: the anchor finds itself
        anchor_of = np.broadcast_to(anchors[~listed, None], ids.shape)
        parts.append((ids, scores, anchor_of, np.broadcast_to(np.arange(k + 1), ids.shape)))
    ids, scores, anchor_of, rank = (np.concatenate([p[i].ravel() for p in parts]) for i in range(4))
    keep = (ids >= 0) & (ids != anchor_of) & ~np.isin(ids, anchors)
    ids, scores, anchor_of, rank = ids[keep], scores[keep], anchor_of[keep], rank[keep]
    order = interleaved(rank, scores)
    ids, scores, anchor_of = ids[order], scores[order], anchor_of[order]
    first = first_occurrences(ids)[:k]
    return corpus.records(ids[first], scores[first], anchor_of[first])
