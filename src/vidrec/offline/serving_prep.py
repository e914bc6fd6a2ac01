"""`vidrec serve prepare`: an artefact's end-of-log state → the online store + rule tables.

User vectors, video vectors and session states are computed as of the end of the artefact's
event log, by the same offline code that built the training examples
(:class:`~vidrec.features.FeatureState`), so serving starts from exactly what training saw.

The rule tables (catalogue metadata with popularity, trending per region, the log clock) are
written once into ``<artefacts>/serving/`` by the build (and by ``vidrec serve tables``), so a
serving process loads them in well under two seconds and never reads the raw data or the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from vidrec.backends.serving_state import HOUR_MS, static_dim_of
from vidrec.config import Config, FeatureConfig, RedisConfig, load_config
from vidrec.contracts.artefacts import CLOCK_FILE, SERVING_DIR, TRENDING_FILE, VIDEOS_FILE
from vidrec.contracts.manifest import Manifest, read_manifest
from vidrec.data import load_catalog
from vidrec.events.event_log import read_events, user_id_space
from vidrec.features import VIDEO_SPEC, make_store, materialize, user_spec
from vidrec.features.offline import users_at, videos_at
from vidrec.features.point_in_time import FeatureState
from vidrec.features.session import SessionStore, from_events
from vidrec.features.stores import USER_ENTITY, VIDEO_ENTITY
from vidrec.offline import privacy
from vidrec.offline.catalog import videos_as_of_log
from vidrec.offline.privacy import PrivacyView, load_tombstones
from vidrec.schema import EventType
from vidrec.security.pseudonym import Pseudonymizer

TRENDING_WINDOW_MS = 24 * HOUR_MS
TRENDING_HALF_LIFE_H = 6.0
POPULAR_HALF_LIFE_H = 72.0
TRENDING_TOP = 1000  # kept per region: more than any surface asks for


def decayed_clicks(
    events: pl.DataFrame, now_ms: int, half_life_h: float, window_ms: int | None, by: list[str]
) -> pl.DataFrame:
    """``by`` + ``score``: clicks before ``now_ms`` weighted by ``0.5 ** (age / half_life)``."""
    clicks = events.filter((pl.col("type") == EventType.CLICK.value) & (pl.col("ts") < now_ms))
    if window_ms is not None:
        clicks = clicks.filter(pl.col("ts") >= now_ms - window_ms)
    weight = 0.5 ** ((now_ms - pl.col("ts")) / (half_life_h * HOUR_MS))
    return clicks.group_by(by).agg(weight.sum().alias("score"))


def rule_tables(
    videos: pl.DataFrame, events: pl.DataFrame, now_ms: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(videos, trending)``: catalogue metadata + global popularity; top videos per region."""
    popular = decayed_clicks(events, now_ms, POPULAR_HALF_LIFE_H, None, ["video_id"])
    table = (
        videos.select("video_id", "creator_id", "primary_category", "upload_ts")
        .join(popular, on="video_id", how="left")
        .with_columns(pl.col("score").fill_null(0.0).alias("popularity"))
        .drop("score")
        .sort("video_id")
    )
    trending = (
        decayed_clicks(
            events.filter(pl.col("region").is_not_null()),
            now_ms,
            TRENDING_HALF_LIFE_H,
            TRENDING_WINDOW_MS,
            ["region", "video_id"],
        )
        .sort(["region", "score", "video_id"], descending=[False, True, False])
        .group_by("region", maintain_order=True)
        .head(TRENDING_TOP)
    )
    return table, trending


def log_clock_ms(events: pl.DataFrame) -> int:
    """Serving "now" for a log: just after its last event."""
    return int(events["ts"].max()) + 1  # type: ignore[arg-type]


def load_videos_and_events(
    root: Path, manifest: Manifest, kuairec_dir: Path
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The catalogue as the artefact's event log saw it, and that log."""
    events_path = root / manifest.artefacts.get("events", "data/events.parquet")
    events = read_events(events_path)
    if "videos" in manifest.artefacts:  # a `--dataset` build keeps its own catalogue
        videos = pl.read_parquet(root / manifest.artefacts["videos"])
    else:
        videos = load_catalog(kuairec_dir, seed=manifest.seed).videos
    return videos_as_of_log(videos, events, str(events_path)), events


def load_users(root: Path, manifest: Manifest, kuairec_dir: Path) -> pl.DataFrame:
    """The users table the artefact was trained with (its own, or KuaiRec's)."""
    if "users" in manifest.artefacts:
        return pl.read_parquet(root / manifest.artefacts["users"])
    return load_catalog(kuairec_dir, seed=manifest.seed).users


def write_rule_tables(root: str | Path, videos: pl.DataFrame, events: pl.DataFrame) -> Path:
    """Write the rule tables and the log clock into ``root/serving``; return that dir."""
    out = Path(root) / SERVING_DIR
    out.mkdir(parents=True, exist_ok=True)
    clock = log_clock_ms(events)
    table, trending = rule_tables(videos, events, clock)
    table.write_parquet(out / VIDEOS_FILE)
    trending.write_parquet(out / TRENDING_FILE)
    (out / CLOCK_FILE).write_text(json.dumps({"log_end_ms": clock}) + "\n")
    return out


def rule_tables_for(root: str | Path, kuairec_dir: Path, manifest: Manifest | None = None) -> Path:
    """The rule tables of an artefact directory, from its own log (`vidrec serve tables`, and
    the build step of `vidrec pipeline run` / `vidrec build`)."""
    root = Path(root)
    manifest = manifest or read_manifest(root / "manifest.json")
    return write_rule_tables(root, *load_videos_and_events(root, manifest, kuairec_dir))


@dataclass(frozen=True)
class PreparedCounts:
    users: int
    videos: int
    sessions: int
    at_ms: int  # the snapshot time (serving "now" of this artefact)


def serving_view(
    root: Path, manifest: Manifest, events: pl.DataFrame, users: pl.DataFrame, cfg: Config
) -> PrivacyView:
    """The artefact's log and the users table as serving may use them (see offline/privacy)."""
    events_path = root / manifest.artefacts.get("events", "data/events.parquet")
    tombstones = load_tombstones(cfg.events.lake_dir)
    space = user_id_space(events_path)
    return privacy.view(events, users, space, Pseudonymizer(cfg.events.id_salt), tombstones)


def prepare_serving(
    artefacts_dir: str | Path,
    redis_cfg: RedisConfig,
    n_buckets: int,
    progress: bool = True,
    features: FeatureConfig | None = None,
) -> PreparedCounts:
    """Materialise the artefact's end-of-log features into Redis and write its rule tables."""
    root = Path(artefacts_dir)
    cfg = load_config()
    features = features or cfg.features
    manifest = read_manifest(root / "manifest.json")
    videos, events = load_videos_and_events(root, manifest, cfg.data.kuairec_dir)
    at = log_clock_ms(events)
    # Forgotten users get nothing back; a pseudonymous log is keyed back to raw ids, which
    # is what requests carry (vidrec.offline.privacy).
    users = load_users(root, manifest, cfg.data.kuairec_dir)
    private = serving_view(root, manifest, events, users, cfg)
    events, users = private.events, private.users
    state = FeatureState(events, videos, users, features)
    store = make_store(redis_cfg, n_buckets)
    batch = redis_cfg.batch_size
    try:
        uspec = user_spec(static_dim_of(manifest))
        user_table = users_at(state, at).select("user_id", "vector")
        raw = private.to_raw(user_table["user_id"].to_list())
        user_table = user_table.with_columns(pl.Series("user_id", raw, dtype=pl.Int64))
        n_users = materialize(user_table, uspec, store, USER_ENTITY, at, batch, progress)
        video_table = videos_at(state, at)
        n_videos = materialize(video_table, VIDEO_SPEC, store, VIDEO_ENTITY, at, batch, progress)
        by_id = from_events(events, videos, at, users, features.history_len)
        sessions = dict(zip(private.to_raw(by_id), by_id.values(), strict=True))
        n_sessions = SessionStore(store).put_many(sessions, batch)
    finally:
        store.close()
    write_rule_tables(root, videos, events)
    return PreparedCounts(users=n_users, videos=n_videos, sessions=n_sessions, at_ms=at)
