"""source/anchor — neighbours of the video being watched (related surface)."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import required, to_candidates


class Anchor:
    name = "anchor"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    async def __call__(self, ctx: RequestContext) -> Candidates:
        anchor = required(ctx.anchor_video_id, "anchor_video_id", "related")
        return to_candidates(await self.retrieval.related((anchor,), self.k), self.name)
