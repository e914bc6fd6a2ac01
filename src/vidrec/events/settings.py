"""Event-path settings not (yet) in :mod:`vidrec.config`: module defaults, one place.

Each is a keyword argument of the class that uses it, so tests and the CLI can override it.
"""

from __future__ import annotations

PROCESSOR_GROUP = "realtime"
LAKE_GROUP = "lake"
READ_COUNT = 200  # entries per stream per XREADGROUP
BLOCK_MS = 1000  # how long one read waits for new entries
CLAIM_MIN_IDLE_MS = 60_000  # pending this long on a dead consumer -> XAUTOCLAIM takes it
CLAIM_EVERY_S = 30.0  # how often a live consumer looks for stale pending entries
DEDUPE_TTL_S = 7 * 24 * 3600  # event-id markers outlive any redelivery (stream retention)
RETRY_BACKOFF_S = (0.1, 0.5, 2.0)  # waits after consecutive dependency faults (last repeats)
TRENDING_HALF_LIFE_H = 6.0  # the same half-life as the offline trending table
TRENDING_EPOCH_H = 7 * 24  # score base moves every epoch (keeps exp(t/tau) finite)
TRENDING_KEEP = 5000  # videos kept per region and epoch
LAKE_MAX_EVENTS = 10_000  # flush the lake buffer at this many events ...
LAKE_MAX_AGE_S = 60.0  # ... or when its oldest event has waited this long
METRICS_PORT = 9465
