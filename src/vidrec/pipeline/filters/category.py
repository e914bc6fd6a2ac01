"""filter/category and filter/anchor — keep a surface on its subject.

CategoryFilter keeps only the requested category (personalised sources on the category
surface search the whole catalogue); AnchorFilter drops the video being watched."""

from __future__ import annotations

from vidrec.pipeline.base import FilterResult, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.sources.base import required


class CategoryFilter:
    name = "category"
    policy = Policy.CLOSED  # pure logic: it cannot fail on a dependency

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult:
        category = required(ctx.category, "category", "category")
        return FilterResult.partition(cands, cands.category != category)


class AnchorFilter:
    name = "anchor"
    policy = Policy.CLOSED

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult:
        anchor = required(ctx.anchor_video_id, "anchor_video_id", "related")
        return FilterResult.partition(cands, cands.video_id == anchor)
