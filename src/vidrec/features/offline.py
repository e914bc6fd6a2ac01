"""Training tables and serving snapshots from an event log (contracts: docs/architecture.md).

Every feature of an example at time t comes from events with ts < t (see
:mod:`vidrec.features.timeline`); labels come from the outcomes of that same impression.
Snapshots ask the same :class:`FeatureState` for vectors at one cutoff time, so a vector
served from Redis equals the one a training example at that time was built from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from rich.progress import track

from vidrec.config import FeatureConfig
from vidrec.errors import InputError
from vidrec.features.context import DAY_MS, context_vectors
from vidrec.features.point_in_time import DEFAULT_FEATURES, FeatureState
from vidrec.features.ranker_input import assemble, user_tower_input
from vidrec.schema import EventType

CHUNK_ROWS = 200_000
"""Examples computed per step: bounds the memory of the float64 intermediates."""

RANKER_COLUMNS = (
    "request_id",
    "user_id",
    "video_id",
    "ts",
    "day",
    "position",
    "click",
    "long_view",
    "like",
    "watch_ms",
    "x",
)
RETRIEVAL_COLUMNS = ("user_id", "video_id", "ts", "day", "user_x", "history")
SPLIT_COLUMN = "split"
"""Added to both tables when a dataset ships its own split (``vidrec.models.splits``)."""


@dataclass(frozen=True)
class TrainingTables:
    ranker: pl.DataFrame
    retrieval: pl.DataFrame


def _chunked(
    n: int,
    compute: Callable[[slice], np.ndarray],
    name: str,
    progress: bool,
    description: str,
) -> pl.Series:
    """Run ``compute`` over row slices, keeping each chunk as its own Series chunk (no copy)."""
    starts = range(0, max(n, 1), CHUNK_ROWS)
    parts = [
        pl.Series(name, compute(slice(s, min(s + CHUNK_ROWS, n))))
        for s in track(starts, description=description, disable=not progress)
    ]
    return pl.concat(parts, rechunk=False)


def _outcome_labels(events: pl.DataFrame, state: FeatureState) -> pl.DataFrame:
    """click / long_view / like / watch_ms per (request_id, video_id)."""
    watches = events.filter(pl.col("type") == EventType.WATCH.value)
    ratio = state.watch_ratio(
        watches["video_id"].to_numpy(),
        watches["watch_ms"].to_numpy(),
        watches["video_duration_ms"].to_numpy(),
    )
    outcomes = pl.concat(
        [
            events.filter(pl.col("type").is_in([EventType.CLICK.value, EventType.LIKE.value]))
            .select("request_id", "video_id", "type", "watch_ms")
            .with_columns(ratio=pl.lit(0.0)),
            watches.select("request_id", "video_id", "type", "watch_ms").with_columns(
                ratio=pl.Series(ratio)
            ),
        ]
    )
    return (
        outcomes.drop_nulls("request_id")
        .group_by("request_id", "video_id")
        .agg(
            click=(pl.col("type") == EventType.CLICK.value).any().cast(pl.Int8),
            long_view=(pl.col("ratio").max() >= state.cfg.long_view_ratio).cast(pl.Int8),
            like=(pl.col("type") == EventType.LIKE.value).any().cast(pl.Int8),
            watch_ms=pl.col("watch_ms").filter(pl.col("type") == EventType.WATCH.value).max(),
        )
    )


def _day(ts: pl.Expr, origin_ms: int) -> pl.Expr:
    return ((ts - origin_ms) // DAY_MS).cast(pl.Int32)


def ranker_rows(
    state: FeatureState,
    user_ids: np.ndarray,
    video_ids: np.ndarray,
    ts: np.ndarray,
    devices: pl.Series,
) -> np.ndarray:
    """Ranker ``x`` for impressions (user, video, ts, device), from events before each ts."""
    context = context_vectors(ts, devices, state.session_depth(user_ids, ts))
    return assemble(
        state.user_vectors(user_ids, ts), state.video_vectors(video_ids, ts), context, ts
    )


def build_training_tables(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    users: pl.DataFrame,
    cfg: FeatureConfig = DEFAULT_FEATURES,
    progress: bool = False,
    splits: pl.DataFrame | None = None,
) -> TrainingTables:
    """Ranker (one row per impression) and retrieval (one row per click) examples.

    ``splits`` (``event_id, split``: a dataset's own split, docs/datasets.md) adds a ``split``
    column to both tables, each example taking the split of the impression or click it is
    built from; without it the tables have no ``split`` column.
    """
    if splits is not None:
        splits = _event_splits(splits, events)
    state = FeatureState(events, videos, users, cfg)
    origin = int(events["ts"].to_numpy().min()) // DAY_MS * DAY_MS if events.height else 0
    user_device = users.select("user_id", pl.col("device").alias("user_device"))
    impressions = (
        events.filter(pl.col("type") == EventType.IMPRESSION.value)
        .sort("ts", maintain_order=True)
        .join(_outcome_labels(events, state), on=["request_id", "video_id"], how="left")
        .join(user_device, on="user_id", how="left")
        .with_columns(
            pl.col("click", "long_view", "like").fill_null(0),
            pl.col("watch_ms_right").fill_null(0).alias("watch_ms"),
            pl.coalesce("device", "user_device").alias("device"),
            _day(pl.col("ts"), origin).alias("day"),
        )
    )
    u, v, t = (impressions[c].to_numpy() for c in ("user_id", "video_id", "ts"))
    devices = impressions["device"]
    x = _chunked(
        impressions.height,
        lambda s: ranker_rows(state, u[s], v[s], t[s], devices[s]),
        "x",
        progress,
        "ranker examples",
    )
    ranker = _with_split(impressions.with_columns(x), RANKER_COLUMNS, splits, "ranker")

    clicks = (
        events.filter(pl.col("type") == EventType.CLICK.value)
        .sort("ts", maintain_order=True)
        .select(
            *(("event_id",) if splits is not None else ()),
            "user_id",
            "video_id",
            "ts",
            _day(pl.col("ts"), origin).alias("day"),
        )
    )
    cu, ct = clicks["user_id"].to_numpy(), clicks["ts"].to_numpy()
    user_x = _chunked(
        clicks.height,
        lambda s: user_tower_input(state.user_vectors(cu[s], ct[s])),
        "user_x",
        progress,
        "retrieval examples",
    )
    history = _chunked(
        clicks.height, lambda s: state.history(cu[s], ct[s]), "history", progress, "histories"
    )
    retrieval = _with_split(
        clicks.with_columns(user_x, history), RETRIEVAL_COLUMNS, splits, "retrieval"
    )
    return TrainingTables(ranker=ranker, retrieval=retrieval)


def _event_splits(splits: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """``event_id, split`` checked: both columns, one row per event id, ids the log knows."""
    for name in ("event_id", SPLIT_COLUMN):
        if name not in splits.columns:
            raise InputError(f"splits: missing column {name!r}")
    if "event_id" not in events.columns:
        raise InputError("events: missing column 'event_id' (needed to join the splits)")
    out = splits.select("event_id", pl.col(SPLIT_COLUMN).cast(pl.String))
    if out["event_id"].is_duplicated().any():
        raise InputError("splits: column 'event_id' holds duplicates")
    return out


def _with_split(
    examples: pl.DataFrame, columns: tuple[str, ...], splits: pl.DataFrame | None, table: str
) -> pl.DataFrame:
    """``examples`` in ``columns``, plus each row's ``split`` (by ``event_id``) when given."""
    if splits is None:
        return examples.select(columns)
    joined = examples.join(splits, on="event_id", how="left", maintain_order="left")
    missing = joined[SPLIT_COLUMN].null_count()
    if missing:
        raise InputError(
            f"{table} examples: {missing:,} of {joined.height:,} rows have no split"
            " (their event_id is not in the splits)"
        )
    return joined.select(*columns, SPLIT_COLUMN)


def users_at(state: FeatureState, at_ms: int) -> pl.DataFrame:
    """``user_id, vector, history`` for every user, from events before ``at_ms``."""
    ids = state.users["user_id"].to_numpy()
    return pl.DataFrame(
        {
            "user_id": ids,
            "vector": state.user_vectors(ids, at_ms),
            "history": state.history(ids, at_ms),
        }
    )


def videos_at(state: FeatureState, at_ms: int) -> pl.DataFrame:
    """``video_id, vector`` for every video uploaded before ``at_ms``."""
    ids = state.videos.filter(pl.col("upload_ts") < at_ms)["video_id"].to_numpy()
    return pl.DataFrame({"video_id": ids, "vector": state.video_vectors(ids, at_ms)})


def snapshot_users(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    users: pl.DataFrame,
    at_ms: int,
    cfg: FeatureConfig = DEFAULT_FEATURES,
) -> pl.DataFrame:
    """User vectors as of ``at_ms`` (videos are needed for categories and creators)."""
    return users_at(FeatureState(events, videos, users, cfg), at_ms)


def snapshot_videos(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    at_ms: int,
    cfg: FeatureConfig = DEFAULT_FEATURES,
) -> pl.DataFrame:
    """Video vectors as of ``at_ms``."""
    return videos_at(FeatureState(events, videos, None, cfg), at_ms)
