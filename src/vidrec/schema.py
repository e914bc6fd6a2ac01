"""Types shared by every vidrec component: events, catalogue tables, ranker heads.

Components talk to each other through these types only. The same event schema is emitted by
the behaviour simulator, accepted by the live API and written to the lake, so a model trained
offline sees exactly what serving will log.

Ids are non-negative integers (KuaiRec ids). Timestamps are epoch milliseconds, UTC.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

RANKER_HEADS: tuple[str, ...] = ("p_click", "p_long_view", "p_like")
"""Ranker output heads, in the order of every ``labels``/score array."""

MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
"""Events stamped further than this in the future are rejected by ingestion."""


class EventType(StrEnum):
    IMPRESSION = "impression"
    CLICK = "click"
    WATCH = "watch"
    LIKE = "like"
    DISLIKE = "dislike"
    SHARE = "share"
    COMMENT = "comment"
    NOT_INTERESTED = "not_interested"
    UPLOAD = "upload"


class Surface(StrEnum):
    HOME = "home"
    RELATED = "related"
    TRENDING = "trending"
    CATEGORY = "category"
    UPLOAD = "upload"


NonNegInt = Annotated[int, Field(ge=0)]


class EngagementEvent(BaseModel):
    """One engagement event, as posted to ``/api/v1/events/engagement``.

    For ``upload`` events ``user_id`` is the creator's id. ``position`` is the 0-based slot
    in the list the user saw, -1 when the event did not come from a list.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    user_id: NonNegInt
    video_id: NonNegInt
    type: EventType
    watch_ms: NonNegInt = 0
    video_duration_ms: NonNegInt = 0
    position: Annotated[int, Field(ge=-1, le=10_000)] = -1
    surface: Surface = Surface.HOME
    request_id: Annotated[str, Field(max_length=128)] | None = None
    ts: NonNegInt
    device: Annotated[str, Field(max_length=32)] | None = None
    region: Annotated[str, Field(max_length=32)] | None = None


EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "user_id": pl.Int64(),
    "video_id": pl.Int64(),
    "type": pl.String(),
    "watch_ms": pl.Int64(),
    "video_duration_ms": pl.Int64(),
    "position": pl.Int32(),
    "surface": pl.String(),
    "request_id": pl.String(),
    "ts": pl.Int64(),
    "device": pl.String(),
    "region": pl.String(),
}
"""Columnar form of :class:`EngagementEvent` (simulator output, lake files, offline input)."""

VIDEO_SCHEMA: dict[str, pl.DataType] = {
    "video_id": pl.Int64(),
    "creator_id": pl.Int64(),
    "category_ids": pl.List(pl.Int64()),  # KuaiRec item_categories "feat" (ids 0..30)
    "primary_category": pl.Int64(),  # first of category_ids
    "category_name": pl.String(),  # KuaiRec first-level category name ("UNKNOWN" if none)
    "caption": pl.String(),
    "duration_ms": pl.Int64(),
    "upload_ts": pl.Int64(),
}
"""The catalogue every component agrees on. KuaiRec lacks creators, durations and upload
times for most videos; the data loader derives them (seeded) and says so."""

N_CATEGORIES = 31
"""KuaiRec item_categories ids are 0..30; category vectors have this many slots."""

USER_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "region": pl.String(),
    "device": pl.String(),
    "activity": pl.String(),  # KuaiRec user_active_degree
    "static": pl.Array(pl.Float32(), 0),  # width fixed by the loader; see USER_STATIC_DIM
}
"""Users: ``static`` is the encoded, normalised KuaiRec user feature vector."""


def check_columns(df: pl.DataFrame, schema: dict[str, pl.DataType], what: str) -> None:
    """Raise ``ValueError`` naming the first missing or mistyped column of a table."""
    for name, dtype in schema.items():
        if name not in df.columns:
            raise ValueError(f"{what}: missing column {name!r}")
        got = df.schema[name]
        if isinstance(dtype, pl.Array):
            if not isinstance(got, pl.Array):
                raise ValueError(f"{what}: column {name!r} has type {got}, expected an array")
            continue
        if got != dtype:
            raise ValueError(f"{what}: column {name!r} has type {got}, expected {dtype}")


# --- Recommendation API -------------------------------------------------------------------
# One set of types for HTTP (BentoML), gRPC and the pipeline. Query models validate every
# field, so a bad request is a 4xx that names the field before any work is done.

MAX_COUNT = 100
"""Largest list a client may ask for; more is a 4xx, not a silent cap."""

IdField = Annotated[int, Field(ge=0, le=2**62)]
CountField = Annotated[int, Field(ge=1, le=MAX_COUNT)]
RegionField = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
SessionField = Annotated[str, Field(min_length=1, max_length=128)]


class HomeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    user_id: IdField
    count: CountField = 20
    session_id: SessionField | None = None
    region: RegionField | None = None  # overrides the user's region (e.g. travelling)
    # Onboarding interests of a new user (category ids, "3,7" in a query string): used only
    # by the cold-start answer, while the user has no history.
    interests: Annotated[
        tuple[Annotated[int, Field(ge=0, lt=N_CATEGORIES)], ...], Field(max_length=N_CATEGORIES)
    ] = ()

    @field_validator("interests", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


class RelatedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    video_id: IdField
    user_id: IdField | None = None
    count: CountField = 20


class TrendingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    region: RegionField
    count: CountField = 20
    user_id: IdField | None = None


class CategoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    user_id: IdField
    category: Annotated[int, Field(ge=0, lt=N_CATEGORIES)]
    count: CountField = 20


class VideoUpload(BaseModel):
    """``POST /api/v1/videos``: the upload webhook (one video's catalogue row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    video_id: IdField
    creator_id: IdField
    category_ids: Annotated[
        list[Annotated[int, Field(ge=0, lt=N_CATEGORIES)]], Field(max_length=N_CATEGORIES)
    ] = []
    caption: Annotated[str, Field(max_length=1000)] = ""
    duration_ms: Annotated[int, Field(gt=0, le=24 * 3600 * 1000)]
    upload_ts: NonNegInt

    def as_event(self) -> EngagementEvent:
        """The ``upload`` engagement event (user = creator) that announces this video."""
        return EngagementEvent(
            event_id=f"upload-{self.video_id}", user_id=self.creator_id, video_id=self.video_id,
            type=EventType.UPLOAD, video_duration_ms=self.duration_ms, ts=self.upload_ts,
        )  # fmt: skip


class RecommendedItem(BaseModel):
    video_id: int
    score: float  # combined ranking score (weighted heads), or retrieval score when degraded
    scores: dict[str, float]  # calibrated per-head probabilities; empty when not ranked
    source: str  # the candidate source that produced it (two_tower, trending, ...)
    explanation: str  # "because you watched …", "trending in north", "new"


class RecommendationResponse(BaseModel):
    request_id: str
    surface: str
    variant: str  # the model variant that served this user (rollouts)
    items: list[RecommendedItem]
    degraded: bool = False
    degraded_reasons: list[str] = Field(default_factory=list)  # "<stage>:<reason>"
