"""`vidrec serve prepare`: an artefact's end-of-log state → the online store + rule tables.

User vectors, video vectors and session states are computed as of the end of the artefact's
event log, by the same offline code that built the training examples
(:class:`~vidrec.features.FeatureState`), so serving starts from exactly what training saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from vidrec.backends.serving_state import (
    load_videos_and_events,
    log_clock_ms,
    prepare,
    static_dim_of,
)
from vidrec.config import Config, FeatureConfig, RedisConfig, load_config
from vidrec.features import VIDEO_SPEC, make_store, materialize, user_spec
from vidrec.features.offline import users_at, videos_at
from vidrec.features.point_in_time import FeatureState
from vidrec.features.session import SessionStore, from_events
from vidrec.features.stores import USER_ENTITY, VIDEO_ENTITY
from vidrec.offline import privacy
from vidrec.offline.events_io import user_id_space
from vidrec.offline.manifest import Manifest, read_manifest
from vidrec.offline.privacy import PrivacyView, load_tombstones
from vidrec.security.pseudonym import Pseudonymizer


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
    from vidrec.data import load_catalog

    root = Path(artefacts_dir)
    cfg = load_config()
    features = features or cfg.features
    manifest = read_manifest(root / "manifest.json")
    videos, events = load_videos_and_events(root, manifest)
    at = log_clock_ms(events)
    # Forgotten users get nothing back; a pseudonymous log is keyed back to raw ids, which
    # is what requests carry (vidrec.offline.privacy).
    private = serving_view(root, manifest, events, load_catalog(cfg.data.kuairec_dir,
                           seed=manifest.seed).users, cfg)  # fmt: skip
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
    prepare(root, videos, events)
    return PreparedCounts(users=n_users, videos=n_videos, sessions=n_sessions, at_ms=at)
