"""Seeded behaviour simulator: engagement logs over the real KuaiRec catalogue and users.

KuaiRec's full interaction matrices are not available here, so training and evaluation logs
come from this generative model. Every mechanism and the ``SimConfig`` field that sets it:

- **Users** (``n_users``: a seeded subset of the 7,176 real users, default all) and their
  hidden category affinity derived from their real features (``affinity_noise``), see
  ``vidrec.data.world``.
- **Videos**: power-law popularity and quality (``popularity_alpha``); creators as in the
  catalogue.
- **Uploads** (``live_fraction``): that share of the catalogue is live at ``start_ts``; the
  rest is uploaded uniformly during the window, as ``upload`` events (``user_id`` = creator,
  ``surface`` = "upload"). Videos are never shown before their ``upload_ts``
  (``schedule_uploads`` gives the catalogue with the simulated upload times).
- **Sessions**: Poisson(rate) sessions per user per day, rate from
  ``sessions_per_user_per_day`` and the user's real activity degree; start hour from
  ``HOURLY_WEIGHTS`` (UTC, evening peak); 1 + Geometric slates per session (mean
  ``slates_per_session``), ``SLATE_GAP_MS`` apart, each a page view (``request_id``) of
  ``slate_size`` videos.
- **Logging policy** (``policy_mix``, ``preference_temperature``, ``fresh_window_days``,
  ``creator_memory``): popular / affinity / fresh / same-creator / random slots, see
  ``vidrec.data.logging_policy``.
- **Outcomes** (``click_bias``, ``w_affinity``, ``w_quality``, ``w_fresh``,
  ``freshness_half_life_days``, ``w_loyalty``, ``skip_bias``, ``skip_slope``,
  ``like_bias``, ``share_bias``, ``comment_bias``, ``not_interested_max``): position-biased
  clicks, watch time, likes/shares/comments, not-interested, see ``vidrec.data.outcomes``.
- **Creator loyalty**: each long view pushes the video's creator into the user's memory of
  ``creator_memory`` recent creators, which both the policy (same-creator slots) and the
  outcome model (``w_loyalty``) read.

Time advances in chunks of ``chunk_ms``; all slates of a chunk are drawn and answered at once
(vectorised numpy), the live catalogue and creator memories are updated between chunks.
Same seed and config -> identical DataFrame; the output has exactly ``EVENT_SCHEMA``, sorted
by ``ts`` (ties keep generation order: impression before its outcomes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
from rich.progress import Progress

from vidrec.data.kuairec import KUAIREC_LOG_START_MS, Catalog, stable_hash
from vidrec.data.logging_policy import SOURCES, CreatorIndex, choose_slates, live_catalog
from vidrec.data.outcomes import DAY_MS, Outcomes, respond
from vidrec.data.world import World, build_world
from vidrec.schema import EVENT_SCHEMA, EventType, Surface, check_columns

HOURLY_WEIGHTS = np.array(
    [2, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 4, 4, 5, 6, 7, 8, 9, 9, 7, 4], dtype=np.float64
)
SLATE_GAP_MS = 45_000
EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
_CODE = {name: np.int8(i) for i, name in enumerate(EVENT_TYPES)}
MAX_PAST_UPLOAD_MS = 120 * DAY_MS


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    n_users: int | None = None
    days: int = 14
    start_ts: int = KUAIREC_LOG_START_MS
    sessions_per_user_per_day: float = 0.6
    slates_per_session: float = 1.3
    slate_size: int = 10
    live_fraction: float = 0.8
    chunk_ms: int = 3_600_000
    policy_mix: tuple[float, ...] = (0.2, 0.4, 0.1, 0.1, 0.2)  # in SOURCES order
    preference_temperature: float = 2.0
    fresh_window_days: float = 3.0
    creator_memory: int = 8
    affinity_noise: float = 0.6
    popularity_alpha: float = 2.0
    click_bias: float = -3.8
    w_affinity: float = 2.0
    w_quality: float = 0.6
    w_fresh: float = 0.8
    freshness_half_life_days: float = 2.0
    w_loyalty: float = 0.8
    skip_bias: float = 2.0
    skip_slope: float = 0.5
    like_bias: float = -5.5
    share_bias: float = -8.0
    comment_bias: float = -7.5
    not_interested_max: float = 0.05

    @property
    def end_ts(self) -> int:
        return self.start_ts + self.days * DAY_MS

    def __post_init__(self) -> None:
        if len(self.policy_mix) != len(SOURCES) or abs(sum(self.policy_mix) - 1.0) > 1e-6:
            raise ValueError(f"SimConfig.policy_mix: {len(SOURCES)} shares {SOURCES} summing to 1")
        if not 0.0 <= self.live_fraction <= 1.0:
            raise ValueError("SimConfig.live_fraction: must be in [0, 1]")
        if self.days < 1 or self.slate_size < 1 or self.chunk_ms < 1:
            raise ValueError("SimConfig.days, slate_size and chunk_ms must be positive")


def schedule_uploads(catalog: Catalog, cfg: SimConfig) -> Catalog:
    """The catalogue with the upload times the simulation uses (idempotent).

    A fixed hash of (video_id, seed) puts ``1 - live_fraction`` of the videos into the
    window, at a hashed instant in it; the others keep their upload time if it is before
    ``start_ts`` and are otherwise moved to a hashed instant up to 120 days before it.
    """
    ids = catalog.videos["video_id"].to_numpy()
    u_window = stable_hash(ids, 2 * cfg.seed + 11).astype(np.float64) / 2.0**64
    u_time = stable_hash(ids, 2 * cfg.seed + 12).astype(np.float64) / 2.0**64
    in_window = u_window >= cfg.live_fraction
    current = catalog.videos["upload_ts"].to_numpy()
    past = np.where(current < cfg.start_ts, current, cfg.start_ts - 1 - u_time * MAX_PAST_UPLOAD_MS)
    window = cfg.start_ts + u_time * (cfg.end_ts - cfg.start_ts)
    upload_ts = np.where(in_window, window, past).astype(np.int64)
    videos = catalog.videos.with_columns(pl.Series("upload_ts", upload_ts))
    return replace(catalog, videos=videos)


def _slates(world: World, cfg: SimConfig, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``(user index, ts)`` of every page view in the window, sorted by ts."""
    n_users = len(world.user_ids)
    counts = rng.poisson(np.tile(world.session_rate, cfg.days))
    session_user = np.repeat(np.tile(np.arange(n_users), cfg.days), counts)
    session_day = np.repeat(np.repeat(np.arange(cfg.days), n_users), counts)
    hour = rng.choice(24, size=len(session_user), p=HOURLY_WEIGHTS / HOURLY_WEIGHTS.sum())
    start = (
        cfg.start_ts
        + session_day * DAY_MS
        + hour * 3_600_000
        + rng.integers(0, 3_600_000, len(session_user))
    )
    per_session = rng.geometric(1.0 / max(cfg.slates_per_session, 1.0), len(session_user))
    slate_user = np.repeat(session_user, per_session)
    first = np.repeat(np.cumsum(per_session) - per_session, per_session)
    k = np.arange(len(slate_user)) - first
    ts = (
        np.repeat(start, per_session)
        + k * SLATE_GAP_MS
        + rng.integers(0, SLATE_GAP_MS // 2, len(slate_user))
    )
    keep = ts < cfg.end_ts - 60_000  # leave room for outcomes inside the window
    order = np.argsort(ts[keep], kind="stable")
    return slate_user[keep][order], ts[keep][order]


@dataclass
class _EventColumns:
    """Events of one chunk, in generation order."""

    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(
        self,
        code: np.int8,
        mask: np.ndarray,
        ts: np.ndarray,
        base: dict[str, np.ndarray],
        watch_ms: np.ndarray | None = None,
    ) -> None:
        n = int(mask.sum())
        part = {k: v[mask] for k, v in base.items()}
        part["type"] = np.full(n, code, dtype=np.int8)
        part["ts"] = ts[mask]
        part["watch_ms"] = np.zeros(n, np.int64) if watch_ms is None else watch_ms[mask]
        self.parts.append(part)

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def _feed_events(
    base: dict[str, np.ndarray], imp_ts: np.ndarray, out: Outcomes, events: _EventColumns
) -> None:
    """Impressions and their outcomes; ``base`` holds user/video/position/slate per slot."""
    events.add(_CODE["impression"], np.ones(len(imp_ts), dtype=bool), imp_ts, base)
    events.add(_CODE["click"], out.click, out.click_ts, base)
    events.add(_CODE["watch"], out.click, out.watch_ts, base, out.watch_ms)
    events.add(_CODE["like"], out.like, out.like_ts, base)
    events.add(_CODE["share"], out.share, out.share_ts, base)
    events.add(_CODE["comment"], out.comment, out.comment_ts, base)
    events.add(_CODE["not_interested"], out.not_interested, out.not_interested_ts, base)


def _remember_creators(
    world: World,
    memory: np.ndarray,
    filled: np.ndarray,
    users: np.ndarray,
    videos: np.ndarray,
    watch_ts: np.ndarray,
) -> None:
    """Push the creators of long views into each user's ring buffer, oldest overwritten."""
    order = np.lexsort((watch_ts, users))
    u, v = users[order], videos[order]
    first = np.searchsorted(u, u, side="left")
    rank = np.arange(len(u)) - first
    memory[u, (filled[u] + rank) % memory.shape[1]] = world.creator_index[v]
    filled += np.bincount(u, minlength=len(filled))


def _upload_events(world: World, cfg: SimConfig, events: _EventColumns) -> None:
    uploaded = (world.upload_ts >= cfg.start_ts) & (world.upload_ts < cfg.end_ts)
    idx = np.flatnonzero(uploaded)
    base = {
        "user": np.full(len(idx), -1, np.int64),
        "video": idx,
        "position": np.full(len(idx), -1, np.int32),
        "slate": np.full(len(idx), -1, np.int64),
    }
    events.add(_CODE["upload"], np.ones(len(idx), bool), world.upload_ts[idx], base)


def _to_frame(world: World, cfg: SimConfig, cols: dict[str, np.ndarray]) -> pl.DataFrame:
    order = np.argsort(cols["ts"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    is_upload = cols["user"] < 0
    user_index = np.where(is_upload, 0, cols["user"])
    video = cols["video"]
    prefix = f"sim{cfg.seed}-"
    raw = pl.DataFrame(
        {
            "user_id": np.where(is_upload, world.creator[video], world.user_ids[user_index]),
            "video_id": world.video_ids[video],
            "type_code": cols["type"].astype(np.uint32),
            "watch_ms": cols["watch_ms"],
            "video_duration_ms": world.duration_ms[video],
            "position": cols["position"],
            "slate": cols["slate"],
            "ts": cols["ts"],
            "region_code": world.user_region[user_index].astype(np.uint32),
            "device_code": world.user_device[user_index].astype(np.uint32),
            "is_upload": is_upload,
        }
    )
    types = pl.Series(EVENT_TYPES)
    df = raw.select(
        pl.concat_str(pl.lit(prefix + "e"), pl.int_range(pl.len()).cast(pl.String)).alias(
            "event_id"
        ),
        "user_id",
        "video_id",
        pl.lit(types).gather(pl.col("type_code")).alias("type"),
        "watch_ms",
        "video_duration_ms",
        "position",
        pl.when("is_upload")
        .then(pl.lit(Surface.UPLOAD.value))
        .otherwise(pl.lit(Surface.HOME.value))
        .alias("surface"),
        pl.when("is_upload")
        .then(None)
        .otherwise(pl.concat_str(pl.lit(prefix + "r"), pl.col("slate").cast(pl.String)))
        .alias("request_id"),
        "ts",
        pl.when("is_upload")
        .then(None)
        .otherwise(pl.lit(pl.Series(world.devices)).gather(pl.col("device_code")))
        .alias("device"),
        pl.when("is_upload")
        .then(None)
        .otherwise(pl.lit(pl.Series(world.regions)).gather(pl.col("region_code")))
        .alias("region"),
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    check_columns(df, EVENT_SCHEMA, "simulated events")
    return df


def simulate(catalog: Catalog, cfg: SimConfig, progress: bool = False) -> pl.DataFrame:
    """Simulated engagement events (``EVENT_SCHEMA``, sorted by ts); see module docstring."""
    catalog = schedule_uploads(catalog, cfg)
    world = build_world(catalog, cfg)
    rng = np.random.default_rng([cfg.seed, 3])
    slate_user, slate_ts = _slates(world, cfg, rng)
    creators = CreatorIndex.of(world)
    memory = np.full((len(world.user_ids), cfg.creator_memory), -1, dtype=np.int32)
    filled = np.zeros(len(world.user_ids), dtype=np.int64)
    fresh_ms = int(cfg.fresh_window_days * DAY_MS)
    events = _EventColumns()
    _upload_events(world, cfg, events)
    n_chunks = -(-(cfg.end_ts - cfg.start_ts) // cfg.chunk_ms)
    bounds = np.searchsorted(slate_ts, cfg.start_ts + np.arange(n_chunks + 1) * cfg.chunk_ms)
    with Progress(disable=not progress) as bar:
        task = bar.add_task("simulating", total=n_chunks)
        for c in range(n_chunks):
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            bar.advance(task)
            if lo == hi:
                continue
            live = live_catalog(world, cfg.start_ts + c * cfg.chunk_ms, fresh_ms)
            users, ts = slate_user[lo:hi], slate_ts[lo:hi]
            videos = choose_slates(world, live, creators, users, memory, cfg, rng)
            size = cfg.slate_size
            base = {
                "user": np.repeat(users, size).astype(np.int64),
                "video": videos.ravel(),
                "position": np.tile(np.arange(size, dtype=np.int32), len(users)),
                "slate": np.repeat(np.arange(lo, hi), size),
            }
            imp_ts = np.repeat(ts, size) + base["position"]
            out = respond(
                world, base["user"], base["video"], base["position"], imp_ts, memory, cfg, rng
            )
            _feed_events(base, imp_ts, out, events)
            lv = out.long_view
            _remember_creators(
                world, memory, filled, base["user"][lv], base["video"][lv], out.watch_ts[lv]
            )
    return _to_frame(world, cfg, events.concat())


@dataclass(frozen=True)
class BenchmarkResult:
    n_events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds


def benchmark_simulator(
    n_events: int, catalog: Catalog, seed: int = 0, progress: bool = True
) -> BenchmarkResult:
    """Time one simulation sized (all users, enough days) to produce about ``n_events``."""
    cfg = SimConfig()
    # ~1.2 mean activity factor x ~1.4 events per impression, measured on the defaults.
    per_user_day = 1.7 * cfg.sessions_per_user_per_day * cfg.slates_per_session * cfg.slate_size
    days = max(1, round(n_events / (len(catalog.users) * per_user_day)))
    start = time.perf_counter()
    events = simulate(catalog, replace(cfg, seed=seed, days=days), progress=progress)
    return BenchmarkResult(n_events=len(events), seconds=time.perf_counter() - start)
