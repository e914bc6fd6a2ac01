"""source/same_creator — more videos from the creators of the seed videos.

Seeds are the user's recent watches (home) or the anchor video (related surface)."""

from __future__ import annotations

from typing import Literal

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.sources.adapt import recent_watches, to_candidates


class SameCreator:
    name = "same_creator"
    policy = Policy.OPEN
    deadline_ms = 30

    def __init__(
        self, retrieval: RetrievalClient, k: int, seeds: Literal["history", "anchor"] = "history"
    ) -> None:
        self.retrieval, self.k, self.seeds = retrieval, k, seeds

    async def __call__(self, ctx: RequestContext) -> Candidates:
        if self.seeds == "anchor":
            ids: tuple[int, ...] = () if ctx.anchor_video_id is None else (ctx.anchor_video_id,)
        else:
            ids = recent_watches(ctx)
        if not ids:
            return Candidates.empty()
        return to_candidates(await self.retrieval.same_creator(ids, self.k), self.name)
