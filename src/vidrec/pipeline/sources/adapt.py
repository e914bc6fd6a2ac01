"""Retrieval results → candidates: the one mapping every source shares."""

from __future__ import annotations

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Candidates, Retrieved

HISTORY_SEEDS = 5
"""How many of the most recent watches seed item-item and same-creator retrieval."""


def to_candidates(found: Retrieved, source: str, region: str = "") -> Candidates:
    return Candidates.from_retrieved(found, source, region)


def recent_watches(ctx: RequestContext, n: int = HISTORY_SEEDS) -> tuple[int, ...]:
    return () if ctx.user is None else ctx.user.recent_watches[:n]


def required(value: int | None, field: str, surface: str) -> int:
    """A request field the surface cannot work without (the API validates it first)."""
    if value is None:
        raise ValueError(f"{field}: required by the {surface} surface")
    return value
