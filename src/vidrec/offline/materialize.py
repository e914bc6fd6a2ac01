"""`vidrec features materialize`: latest feature vectors from an event log → the online store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from vidrec.config import load_config
from vidrec.data import load_catalog
from vidrec.errors import InputError
from vidrec.events.event_log import read_event_log
from vidrec.features import VIDEO_SPEC, make_store, materialize, user_spec
from vidrec.features.offline import FeatureState, users_at, videos_at
from vidrec.features.stores import USER_ENTITY, VIDEO_ENTITY
from vidrec.offline import privacy
from vidrec.offline.catalog import videos_as_of_log
from vidrec.offline.privacy import load_tombstones
from vidrec.security.pseudonym import Pseudonymizer

ENTITIES = ("users", "videos")


def materialize_from_events(
    events: Path,
    entity: str,
    redis_url: str | None = None,
    cluster: bool | None = None,
    at_ms: int | None = None,
    progress: bool = True,
) -> int:
    """Vectors as of ``at_ms`` (default: just after the last event) written to Redis."""
    if entity not in ENTITIES:
        raise InputError(f"--entity: expected one of {', '.join(ENTITIES)}, got {entity!r}")
    cfg = load_config()
    redis_cfg = dataclasses.replace(
        cfg.redis,
        url=redis_url or cfg.redis.url,
        cluster=cfg.redis.cluster if cluster is None else cluster,
    )
    source = read_event_log(events)
    catalog = load_catalog(cfg.data.kuairec_dir)
    videos = videos_as_of_log(catalog.videos, source.events, str(events))
    at = at_ms if at_ms is not None else int(source.events["ts"].max()) + 1  # type: ignore[arg-type]
    # Forgotten users are left out; pseudonymous ids are keyed back to raw ids (online keys).
    tombstones = load_tombstones(events, cfg.events.lake_dir)
    private = privacy.view(source.events, catalog.users, source.user_ids,
                           Pseudonymizer(cfg.events.id_salt), tombstones)  # fmt: skip
    state = FeatureState(private.events, videos, private.users, cfg.features)
    if entity == "users":
        table = users_at(state, at).select("user_id", "vector")
        raw = private.to_raw(table["user_id"].to_list())
        table = table.with_columns(pl.Series("user_id", raw, dtype=pl.Int64))
        static_dim = int(catalog.users.schema["static"].size)  # type: ignore[attr-defined]
        spec, name = user_spec(static_dim), USER_ENTITY
    else:
        table, spec, name = videos_at(state, at), VIDEO_SPEC, VIDEO_ENTITY
    store = make_store(redis_cfg, cfg.features.n_buckets)
    try:
        return materialize(table, spec, store, name, at, cfg.redis.batch_size, progress)
    finally:
        store.close()
