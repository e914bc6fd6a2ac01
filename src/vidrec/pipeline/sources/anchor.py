"""source/anchor — neighbours of the video being watched (related surface)."""

from __future__ import annotations

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.retrievers import Query
from vidrec.pipeline.sources.base import Found, RetrievalSource, because_you_watched, required


class Anchor(RetrievalSource):
    name = "anchor"
    retriever = "related"  # item_item's retrieval, seeded by the request's anchor

    def query(self, ctx: RequestContext) -> Query | None:
        return Query(video_ids=(required(ctx.anchor_video_id, "anchor_video_id", "related"),))

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return because_you_watched(found) or f"related to {ctx.anchor_video_id}"
