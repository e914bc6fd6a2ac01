"""Retrieval results → candidates: the one mapping every source shares."""

from __future__ import annotations

from collections.abc import Sequence

from vidrec.pipeline.base import Candidate, RequestContext
from vidrec.pipeline.clients import RetrievedVideo

HISTORY_SEEDS = 5
"""How many of the most recent watches seed item-item and same-creator retrieval."""


def to_candidates(
    found: Sequence[RetrievedVideo], source: str, region: str = ""
) -> list[Candidate]:
    return [
        Candidate(
            video_id=v.video_id,
            source=source,
            retrieval_score=v.score,
            creator_id=v.creator_id,
            category=v.category,
            upload_ts=v.upload_ts,
            anchor_video_id=v.anchor_video_id,
            region=region,
        )
        for v in found
    ]


def recent_watches(ctx: RequestContext, n: int = HISTORY_SEEDS) -> tuple[int, ...]:
    return () if ctx.user is None else ctx.user.recent_watches[:n]


def required(value: int | None, field: str, surface: str) -> int:
    """A request field the surface cannot work without (the API validates it first)."""
    if value is None:
        raise ValueError(f"{field}: required by the {surface} surface")
    return value
