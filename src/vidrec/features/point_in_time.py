"""Entity feature vectors at arbitrary times, from one pass over the event log.

:class:`FeatureState` indexes the log once (one :class:`Timeline` per event kind and entity)
and then answers "user u's / video v's vector as of time t" for many (id, t) pairs at once.
Training examples (t = the impression's ts) and serving snapshots (t = the cutoff) both go
through :meth:`FeatureState.user_vectors` / :meth:`FeatureState.video_vectors`, so the two can
never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.config import FeatureConfig
from vidrec.errors import InputError
from vidrec.features.context import DAY_MS, HOUR_MS
from vidrec.features.spec import (
    RECENT_CREATORS,
    SESSION_WINDOW_MS,
    VIDEO_SPEC,
    FeatureSpec,
    user_spec,
)
from vidrec.features.timeline import Timeline
from vidrec.schema import (
    EVENT_SCHEMA,
    MAX_CREATOR_ID,
    N_CATEGORIES,
    VIDEO_SCHEMA,
    EventType,
    check_columns,
)

MAX_WATCH_RATIO = 5.0
"""Watch ratios (replays) are clipped here so one looping viewer cannot dominate a mean."""
MAX_FLOAT32_ID = MAX_CREATOR_ID + 1
"""Ids stored inside float32 vectors (creator ids) must be exactly representable."""

DEFAULT_FEATURES = FeatureConfig()
USER_COLUMNS = ("user_id", "region", "device", "activity", "static")


def static_width(users: pl.DataFrame) -> int:
    """Width of the users table's ``static`` array column (USER_STATIC_DIM of that data)."""
    for name in USER_COLUMNS:
        if name not in users.columns:
            raise InputError(f"users: missing column {name!r}")
    dtype = users.schema["static"]
    if not isinstance(dtype, pl.Array):
        raise InputError(f"users: column 'static' has type {dtype}, expected Array(Float32, K)")
    return int(dtype.size)


def check_tables(events: pl.DataFrame, videos: pl.DataFrame) -> None:
    """Raise :class:`InputError` naming the table and column that breaks the contract."""
    for df, schema, what in ((events, EVENT_SCHEMA, "events"), (videos, VIDEO_SCHEMA, "videos")):
        try:
            check_columns(df, schema, what)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return num / np.maximum(den, 1.0)


def _count(timeline: Timeline, ids: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each entity's events with ts' < ts."""
    return timeline.count_between(timeline.start(ids), timeline.position(ids, ts))


def _smoothed(
    clicks: np.ndarray, impressions: np.ndarray, strength: float, mean: float
) -> np.ndarray:
    """Beta-prior smoothed CTR: ``mean`` weighted as ``strength`` pseudo-impressions."""
    return (clicks + strength * mean) / (impressions + strength)


class _IdIndex:
    """Row of each id in a catalogue table; unknown ids raise naming the table."""

    def __init__(self, ids: np.ndarray, what: str) -> None:
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        if self._sorted.size > 1 and (np.diff(self._sorted) == 0).any():
            dup = self._sorted[np.flatnonzero(np.diff(self._sorted) == 0)[0]]
            raise InputError(f"{what}: duplicate id {dup}")
        self._what = what

    def rows(self, ids: np.ndarray, source: str) -> np.ndarray:
        pos = np.clip(np.searchsorted(self._sorted, ids), 0, max(self._sorted.size - 1, 0))
        missing = self._sorted.size == 0 or (self._sorted[pos] != ids)
        if np.any(missing):
            first = ids[np.flatnonzero(np.broadcast_to(missing, ids.shape))[0]]
            raise InputError(f"{source}: id {first} is not in {self._what}")
        return self._order[pos]


def category_multi_hot(videos: pl.DataFrame) -> np.ndarray:
    """(n_videos, N_CATEGORIES) float32 multi-hot from ``category_ids``, row-aligned."""
    lists = videos["category_ids"]
    rows = np.repeat(np.arange(videos.height), lists.list.len().fill_null(0).to_numpy())
    cats = lists.explode().drop_nulls().to_numpy().astype(np.int64)
    if cats.size and (cats.min() < 0 or cats.max() >= N_CATEGORIES):
        bad = cats[(cats < 0) | (cats >= N_CATEGORIES)][0]
        raise InputError(
            f"videos: column 'category_ids' has id {bad} outside 0..{N_CATEGORIES - 1}"
        )
    out = np.zeros((videos.height, N_CATEGORIES), dtype=np.float32)
    out[rows, cats] = 1.0
    return out


@dataclass(frozen=True)
class _Events:
    """The event columns the features need, as numpy, split by type."""

    user: np.ndarray
    video: np.ndarray
    ts: np.ndarray
    watch_ms: np.ndarray
    duration_ms: np.ndarray

    @classmethod
    def of_type(cls, events: pl.DataFrame, kind: EventType) -> _Events:
        df = events.filter(pl.col("type") == kind.value)
        return cls(
            user=df["user_id"].to_numpy(),
            video=df["video_id"].to_numpy(),
            ts=df["ts"].to_numpy(),
            watch_ms=df["watch_ms"].to_numpy(),
            duration_ms=df["video_duration_ms"].to_numpy(),
        )


class FeatureState:
    """The event log indexed for point-in-time user and video features."""

    def __init__(
        self,
        events: pl.DataFrame,
        videos: pl.DataFrame,
        users: pl.DataFrame | None,
        cfg: FeatureConfig = DEFAULT_FEATURES,
    ) -> None:
        """Index ``events``; ``users`` may be None when only video vectors are wanted."""
        check_tables(events, videos)
        self.cfg = cfg
        self.videos = videos
        self.video_index = _IdIndex(videos["video_id"].to_numpy(), "videos")
        self.creator = videos["creator_id"].to_numpy().astype(np.int64)
        if self.creator.size and self.creator.max() >= MAX_FLOAT32_ID:
            raise InputError(f"videos: column 'creator_id' must be < {MAX_FLOAT32_ID}")
        self.categories = category_multi_hot(videos)
        self.duration_ms = videos["duration_ms"].to_numpy()
        self.upload_ts = videos["upload_ts"].to_numpy()
        self._users = users
        if users is not None:
            static_dim = static_width(users)
            self.user_index = _IdIndex(users["user_id"].to_numpy(), "users")
            self.user_spec: FeatureSpec = user_spec(static_dim)
            self.static = (
                users["static"].to_numpy().astype(np.float32).reshape(users.height, static_dim)
            )

        kinds = (EventType.IMPRESSION, EventType.CLICK, EventType.WATCH, EventType.LIKE)
        imp, clk, wat, lik = (_Events.of_type(events, kind) for kind in kinds)
        rows = {}
        for kind, ev in zip(kinds, (imp, clk, wat, lik), strict=True):
            where = f"events ({kind.value})"
            rows[kind] = self.video_index.rows(ev.video, f"{where}: column 'video_id'")
            if users is not None:
                self.user_index.rows(ev.user, f"{where}: column 'user_id'")
        watch_rows = rows[EventType.WATCH]
        ratio = self.watch_ratio(wat.video, wat.watch_ms, wat.duration_ms)
        n_cats = self.categories[watch_rows].sum(axis=1, keepdims=True)
        share = self.categories[watch_rows] / np.maximum(n_cats, 1.0)
        creators = self.creator[watch_rows]

        self.user_impressions = Timeline(imp.user, imp.ts, what="impressions")
        self.user_clicks = Timeline(clk.user, clk.ts, what="clicks")
        self.user_likes = Timeline(lik.user, lik.ts, what="likes")
        self.user_watches = Timeline(
            wat.user,
            wat.ts,
            values=np.column_stack([ratio, share]),
            payload={"video_id": wat.video, "creator_id": creators},
            what="watches",
        )
        self.video_impressions = Timeline(imp.video, imp.ts, what="impressions")
        self.video_clicks = Timeline(clk.video, clk.ts, what="clicks")
        self.video_likes = Timeline(lik.video, lik.ts, what="likes")
        self.video_watches = Timeline(wat.video, wat.ts, values=ratio[:, None], what="watches")
        imp_creator = self.creator[rows[EventType.IMPRESSION]]
        self.creator_impressions = Timeline(imp_creator, imp.ts, what="impressions")
        self.creator_clicks = Timeline(self.creator[rows[EventType.CLICK]], clk.ts, what="clicks")
        self.creator_uploads = Timeline(self.creator, self.upload_ts, what="videos.upload_ts")

    def watch_ratio(
        self, video_ids: np.ndarray, watch_ms: np.ndarray, duration_ms: np.ndarray
    ) -> np.ndarray:
        """watch_ms / duration (the event's, else the catalogue's), clipped to [0, MAX]."""
        catalogue = self.duration_ms[self.video_index.rows(video_ids, "events: column 'video_id'")]
        duration = np.where(duration_ms > 0, duration_ms, catalogue)
        return np.clip(watch_ms / np.maximum(duration, 1), 0.0, MAX_WATCH_RATIO)

    @property
    def users(self) -> pl.DataFrame:
        if self._users is None:
            raise ValueError("this FeatureState was built without a users table")
        return self._users

    def user_vectors(self, user_ids: np.ndarray, ts: np.ndarray | int) -> np.ndarray:
        """(q, USER_SPEC.dim) float32: each user's vector from events with ts' < ts."""
        if self._users is None:
            raise ValueError("user_vectors: this FeatureState was built without a users table")
        spec = self.user_spec
        ids = np.asarray(user_ids, dtype=np.int64)
        t = np.broadcast_to(np.asarray(ts, dtype=np.int64), ids.shape)
        out = np.zeros((ids.size, spec.dim), dtype=np.float32)
        w = self.user_watches
        start, now = w.start(ids), w.position(ids, t)
        total = w.count_between(start, now)
        for name, window in (("watches_1d", 1), ("watches_7d", 7), ("watches_30d", 30)):
            recent = w.count_between(w.position(ids, t - window * DAY_MS), now)
            out[:, spec.slice(name)] = np.log1p(recent)[:, None]
        out[:, spec.slice("watches_total")] = np.log1p(total)[:, None]
        sums = w.sum_between(start, now)
        out[:, spec.slice("mean_watch_ratio")] = _ratio(sums[:, 0], total)[:, None]
        out[:, spec.slice("category_affinity")] = _ratio(sums[:, 1:], total[:, None])
        like_rate = _ratio(_count(self.user_likes, ids, t), total)
        click_rate = _ratio(_count(self.user_clicks, ids, t), _count(self.user_impressions, ids, t))
        out[:, spec.slice("like_rate")] = np.minimum(like_rate, 1.0)[:, None]
        out[:, spec.slice("click_rate")] = np.minimum(click_rate, 1.0)[:, None]
        recent_creators = w.last_before("creator_id", start, now, RECENT_CREATORS)
        out[:, spec.slice("recent_creators")] = recent_creators
        rows = self.user_index.rows(ids, "user query")
        out[:, spec.slice("static")] = self.static[rows]
        return out

    def history(self, user_ids: np.ndarray, ts: np.ndarray | int) -> np.ndarray:
        """(q, history_len) int64: videos watched before ts, most recent first, -1 padded."""
        ids = np.asarray(user_ids, dtype=np.int64)
        w = self.user_watches
        return w.last_before("video_id", w.start(ids), w.position(ids, ts), self.cfg.history_len)

    def session_depth(self, user_ids: np.ndarray, ts: np.ndarray | int) -> np.ndarray:
        """The user's impressions in ``[ts - SESSION_WINDOW_MS, ts)``."""
        imp = self.user_impressions
        t = np.asarray(ts, dtype=np.int64)
        lo = imp.position(user_ids, t - SESSION_WINDOW_MS)
        return imp.count_between(lo, imp.position(user_ids, t))

    def video_vectors(self, video_ids: np.ndarray, ts: np.ndarray | int) -> np.ndarray:
        """(q, VIDEO_SPEC.dim) float32: each video's vector from events with ts' < ts."""
        spec = VIDEO_SPEC
        ids = np.asarray(video_ids, dtype=np.int64)
        t = np.broadcast_to(np.asarray(ts, dtype=np.int64), ids.shape)
        rows = self.video_index.rows(ids, "video query")
        creators = self.creator[rows]
        out = np.zeros((ids.size, spec.dim), dtype=np.float32)
        upload = self.upload_ts[rows]
        out[:, spec.slice("upload_day")] = (upload // DAY_MS)[:, None]
        out[:, spec.slice("upload_sec_of_day")] = ((upload % DAY_MS) // 1000)[:, None]
        out[:, spec.slice("log_duration_s")] = np.log1p(self.duration_ms[rows] / 1000)[:, None]
        out[:, spec.slice("categories")] = self.categories[rows]
        out[:, spec.slice("creator_id")] = creators[:, None]

        prior = self.cfg.ctr_prior_impressions
        impressions = _count(self.video_impressions, ids, t)
        ctr = _smoothed(
            _count(self.video_clicks, ids, t), impressions, prior, self.cfg.ctr_prior_mean
        )
        w = self.video_watches
        start, now = w.start(ids), w.position(ids, t)
        views = w.count_between(start, now)
        out[:, spec.slice("smoothed_ctr")] = ctr[:, None]
        out[:, spec.slice("impressions")] = np.log1p(impressions)[:, None]
        mean_ratio = _ratio(w.sum_between(start, now)[:, 0], views)
        out[:, spec.slice("mean_watch_ratio")] = mean_ratio[:, None]
        like_rate = _ratio(_count(self.video_likes, ids, t), views)
        out[:, spec.slice("like_rate")] = np.minimum(like_rate, 1.0)[:, None]
        for name, window in (("views_1h", HOUR_MS), ("views_1d", DAY_MS)):
            recent = w.count_between(w.position(ids, t - window), now)
            out[:, spec.slice(name)] = np.log1p(recent)[:, None]

        c_imp = _count(self.creator_impressions, creators, t)
        c_ctr = _smoothed(
            _count(self.creator_clicks, creators, t), c_imp, prior, self.cfg.ctr_prior_mean
        )
        out[:, spec.slice("creator_smoothed_ctr")] = c_ctr[:, None]
        uploads = _count(self.creator_uploads, creators, t)
        out[:, spec.slice("creator_video_count")] = np.log1p(uploads)[:, None]
        return out
