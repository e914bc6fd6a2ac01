"""mixer/explain — why each item is here, from the source that found it.

Anchors are video ids; the API layer may map them to captions."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates

_FIXED = {
    "fresh": "new",
    "same_creator": "more from a creator you watch",
    "two_tower": "recommended for you",
    "popular": "popular now",
}


def explanation(
    source: str, region: str, anchor_video_id: int, category: int, ctx: RequestContext
) -> str:
    """The sentence for one item found by ``source``."""
    if anchor_video_id >= 0 and source in ("two_tower", "item_item", "anchor"):
        return f"because you watched {anchor_video_id}"
    if source == "trending":
        return f"trending in {region or ctx.region or 'your region'}"
    if source == "category":
        return f"popular in {category if category >= 0 else ctx.category}"
    if source == "interests":
        return f"because you picked category {category}"
    if source == "anchor":
        return f"related to {ctx.anchor_video_id}"
    return _FIXED.get(source, "recommended for you")


class Explain:
    """Labels the rows it is given: it runs after Take, on the served page only."""

    name = "explain"
    policy = Policy.OPEN
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        found_by = [cands.labels[i] for i in cands.label.tolist()]
        text = tuple(
            explanation(source, region, anchor, category, ctx)
            for (source, region), anchor, category in zip(
                found_by, cands.anchor_video_id.tolist(), cands.category.tolist(), strict=True
            )
        )
        return cands.with_(explanation=text)
