"""source/anchor — neighbours of the video being watched (related surface).

The related surface answers "what is related to V", so V must exist: the source looks V up
(retrieval ``videos``) alongside its neighbours and raises
:class:`~vidrec.pipeline.base.UnknownVideo` when the catalogue does not hold it, instead of
serving a page about something else. Both calls run concurrently: the lookup costs no latency.
"""

from __future__ import annotations

import asyncio

import numpy as np

from vidrec.pipeline.base import RequestContext, UnknownVideo
from vidrec.pipeline.candidates import Candidates, Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource, required, unique_in_order


class Anchor(RetrievalSource):
    name = "anchor"
    retriever = "related"  # item_item's retrieval, seeded by the request's anchor

    def query(self, ctx: RequestContext) -> Query | None:
        return Query(video_ids=(required(ctx.anchor_video_id, "anchor_video_id", "related"),))

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        # The anchor is what the viewer is watching now, not (necessarily) their history.
        return f"related to {found.anchor_video_id}"

    async def __call__(self, ctx: RequestContext) -> Candidates:
        query = self.query(ctx)
        assert query is not None  # required() raised otherwise
        known, found = await asyncio.gather(
            self.retrieval.retrieve("videos", query, 1),
            self.retrieval.retrieve(self.retriever, query, self.k),
        )
        if not len(known):
            raise UnknownVideo(query.video_ids[0])
        return Candidates.from_retrieved(found, self.name)


@retriever("videos")
def videos(corpus: Corpus, query: Query, k: int) -> Retrieved:
    """The catalogue's records of ``query.video_ids`` (at most ``k``, in order); unknown ids
    are left out, so an empty answer means none of them exists."""
    ids = unique_in_order(query.video_ids)[:k]
    return corpus.records(ids, np.zeros(ids.size))
