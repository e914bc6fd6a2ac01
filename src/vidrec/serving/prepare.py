"""`vidrec serve prepare`: an artefact's end-of-log state → the online store + rule tables.

User vectors, video vectors and session states are computed as of the end of the artefact's
event log, by the same offline code that built the training examples
(:class:`~vidrec.features.FeatureState`), so serving starts from exactly what training saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidrec.config import FeatureConfig, RedisConfig, load_config
from vidrec.features import VIDEO_SPEC, make_store, materialize, user_spec
from vidrec.features.offline import users_at, videos_at
from vidrec.features.session import SessionStore, from_events
from vidrec.features.state import FeatureState
from vidrec.features.stores import USER_ENTITY, VIDEO_ENTITY
from vidrec.offline.manifest import read_manifest
from vidrec.serving.state import load_videos_and_events, log_clock_ms, prepare, static_dim_of


@dataclass(frozen=True)
class PreparedCounts:
    users: int
    videos: int
    sessions: int
    at_ms: int  # the snapshot time (serving "now" of this artefact)


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
    users = load_catalog(cfg.data.kuairec_dir, seed=manifest.seed).users
    at = log_clock_ms(events)
    state = FeatureState(events, videos, users, features)
    store = make_store(redis_cfg, n_buckets)
    batch = redis_cfg.batch_size
    try:
        uspec = user_spec(static_dim_of(manifest))
        user_table = users_at(state, at).select("user_id", "vector")
        n_users = materialize(user_table, uspec, store, USER_ENTITY, at, batch, progress)
        video_table = videos_at(state, at)
        n_videos = materialize(video_table, VIDEO_SPEC, store, VIDEO_ENTITY, at, batch, progress)
        sessions = from_events(events, videos, at, users, features.history_len)
        n_sessions = SessionStore(store).put_many(sessions, batch)
    finally:
        store.close()
    prepare(root, videos, events)
    return PreparedCounts(users=n_users, videos=n_videos, sessions=n_sessions, at_ms=at)
