"""Event-path defaults, read once from :class:`vidrec.config.EventsConfig` (env-overridable).

Each is also a keyword argument of the class that uses it, so tests can override it.
"""

from __future__ import annotations

from vidrec.config import load_config

_E = load_config().events
PROCESSOR_GROUP = _E.processor_group
LAKE_GROUP = _E.lake_group
READ_COUNT = _E.read_count
BLOCK_MS = _E.block_ms
CLAIM_MIN_IDLE_MS = _E.claim_min_idle_ms
CLAIM_EVERY_S = _E.claim_every_s
DEDUPE_TTL_S = _E.dedupe_ttl_s
RETRY_BACKOFF_S = (0.1, 0.5, 2.0)  # waits after consecutive dependency faults (last repeats)
TRENDING_HALF_LIFE_H = _E.trending_half_life_h
TRENDING_EPOCH_H = _E.trending_epoch_h
TRENDING_KEEP = _E.trending_keep
LAKE_MAX_EVENTS = _E.lake_max_events
LAKE_MAX_AGE_S = _E.lake_max_age_s
METRICS_PORT = _E.processor_metrics_port
