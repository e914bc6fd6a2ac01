"""Types shared by every vidrec component: events, catalogue tables, ranker heads.

Components talk to each other through these types only. The same event schema is emitted by
the behaviour simulator, accepted by the live API and written to the lake, so a model trained
offline sees exactly what serving will log.

Ids are non-negative integers below 2**62 (:data:`MAX_ID`; KuaiRec ids), never booleans: every
event, upload, query and gRPC message shares :data:`IdField`, so whatever the API accepts fits the
Int64 columns of the lake. Timestamps are epoch milliseconds, UTC.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import polars as pl
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

RANKER_HEADS: tuple[str, ...] = ("p_click", "p_long_view", "p_like")
"""Ranker output heads, in the order of every ``labels``/score array."""

MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
"""Events stamped further than this in the future are rejected by ingestion."""
SECONDS_BELOW = 10**11
"""An epoch timestamp below this (1973 in ms, year 5138 in s) was sent in seconds."""
MAX_ID = (1 << 62) - 1
"""Largest id the API accepts: far above any real id, well inside Int64 (lake, Redis keys)."""
MAX_CREATOR_ID = (1 << 24) - 1
"""Largest creator id: creator ids travel inside float32 feature vectors, exact up to 2^24."""


def timestamp_problem(ts_ms: int, now_ms: int, earliest_ms: int) -> str | None:
    """Why an ingested epoch-ms timestamp is refused (what to send instead), or None.

    Seconds are the usual mistake (1.7e9 would be January 1970 in ms); the window is
    ``[earliest_ms, now_ms + MAX_FUTURE_SKEW_MS]``: a clock that far off would poison every
    windowed counter.
    """
    if ts_ms < SECONDS_BELOW:
        as_ms = f" (e.g. {ts_ms * 1000})" if ts_ms * 1000 >= earliest_ms else ""
        return f"{ts_ms} looks like seconds; send milliseconds since the epoch{as_ms}"
    if ts_ms < earliest_ms:
        return f"{ts_ms} ms is before the earliest accepted time ({earliest_ms} ms since the epoch)"
    if ts_ms > now_ms + MAX_FUTURE_SKEW_MS:
        return f"{ts_ms - now_ms} ms in the future (at most {MAX_FUTURE_SKEW_MS} allowed)"
    return None


def _not_bool(value: object) -> object:
    """``true`` is not the id 1: JSON booleans are refused where a number is expected."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number; send an integer")
    return value


NotBool = BeforeValidator(_not_bool)  # after Field(...): the JSON schema keeps its bounds
IdField = Annotated[int, Field(ge=0, le=MAX_ID), NotBool]
"""Every user and video id of every route and message."""
CreatorIdField = Annotated[int, Field(ge=0, le=MAX_CREATOR_ID), NotBool]
"""A video's creator (an upload): see :data:`MAX_CREATOR_ID`."""
Millis = Annotated[int, Field(ge=0, le=MAX_ID), NotBool]
"""A duration or an epoch timestamp in milliseconds (bounded like ids: it fits Int64)."""
EpochMs = Annotated[
    int, Field(ge=0, le=MAX_ID, description="milliseconds since the Unix epoch (UTC)"), NotBool
]


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


class EngagementEvent(BaseModel):
    """One engagement event, as posted to ``/api/v1/events/engagement``.

    For ``upload`` events ``user_id`` is the creator's id. ``position`` is the 0-based slot
    in the list the user saw, -1 when the event did not come from a list.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    user_id: IdField
    video_id: IdField
    type: EventType
    watch_ms: Millis = 0
    video_duration_ms: Millis = 0
    position: Annotated[int, Field(ge=-1, le=10_000), NotBool] = -1
    surface: Surface = Surface.HOME
    request_id: Annotated[str, Field(max_length=128)] | None = None
    ts: EpochMs
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

CountField = Annotated[int, Field(ge=1, le=MAX_COUNT), NotBool]
CategoryField = Annotated[int, Field(ge=0, lt=N_CATEGORIES), NotBool]
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
    interests: Annotated[tuple[CategoryField, ...], Field(max_length=N_CATEGORIES)] = ()

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
    category: CategoryField
    count: CountField = 20


class VideoUpload(BaseModel):
    """``POST /api/v1/videos``: the upload webhook (one video's catalogue row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    video_id: IdField
    creator_id: CreatorIdField
    category_ids: Annotated[list[CategoryField], Field(max_length=N_CATEGORIES)] = []
    caption: Annotated[str, Field(max_length=1000)] = ""
    duration_ms: Annotated[int, Field(gt=0, le=24 * 3600 * 1000), NotBool]
    upload_ts: EpochMs

    def as_event(self) -> EngagementEvent:
        """The ``upload`` engagement event (user = creator) that announces this video."""
        return EngagementEvent(
            event_id=f"upload-{self.video_id}", user_id=self.creator_id, video_id=self.video_id,
            type=EventType.UPLOAD, video_duration_ms=self.duration_ms, ts=self.upload_ts,
        )  # fmt: skip


class RecommendedItem(BaseModel):
    video_id: int
    score: float = Field(
        description="combined ranking score (weighted heads), or retrieval score when degraded"
    )
    scores: dict[str, float] = Field(
        description="calibrated per-head probabilities (p_click, p_long_view, p_like); empty"
        " when not ranked"
    )
    source: str = Field(description="the candidate source that produced it (two_tower, ...)")
    explanation: str = Field(description='"because you watched …", "trending in north", "new"')


class RecommendationResponse(BaseModel):
    request_id: str = Field(description="id of this answer; events about it carry it back")
    surface: str
    variant: str = Field(description="the model variant that served this user (rollouts)")
    items: list[RecommendedItem]
    degraded: bool = Field(default=False, description="true when a stage fell back")
    degraded_reasons: list[str] = Field(
        default_factory=list, description='why, as "<stage>:<reason>"'
    )
