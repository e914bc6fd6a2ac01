"""mixer/explain — why each item is here, from the source that found it.

Anchors are video ids; the API layer may map them to captions."""

from __future__ import annotations

from vidrec.pipeline.base import Candidate, Policy, RequestContext

_FIXED = {
    "fresh": "new",
    "same_creator": "more from a creator you watch",
    "two_tower": "recommended for you",
    "popular": "popular now",
}


def explanation(c: Candidate, ctx: RequestContext) -> str:
    if c.anchor_video_id >= 0 and c.source in ("two_tower", "item_item", "anchor"):
        return f"because you watched {c.anchor_video_id}"
    if c.source == "trending":
        return f"trending in {c.region or ctx.region or 'your region'}"
    if c.source == "category":
        return f"popular in {c.category if c.category >= 0 else ctx.category}"
    if c.source == "interests":
        return f"because you picked category {c.category}"
    if c.source == "anchor":
        return f"related to {ctx.anchor_video_id}"
    return _FIXED.get(c.source, "recommended for you")


class Explain:
    name = "explain"
    policy = Policy.OPEN
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> list[Candidate]:
        for c in cands:
            c.explanation = explanation(c, ctx)
        return list(cands)
