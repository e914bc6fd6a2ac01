"""Trending per region: exponentially decayed engagement scores with no rescans.

The score of a video at time ``t`` is ``sum_i w_i * exp(-(t - t_i) / tau)``. Dividing by the
common factor ``exp(-t / tau)`` leaves ``sum_i w_i * exp(t_i / tau)``: each event adds a
fixed amount (ZINCRBY) and older scores never need rewriting. ``exp(t_i / tau)`` overflows a
double after ~700 tau, so the base time moves every epoch (``TRENDING_EPOCH_H``): events go to
``tr:{r:<region>}:<epoch>`` scaled by ``exp((t_i - epoch_start) / tau)``, and a reader
combines the current and previous epoch's sets with ZUNION weights ``exp(-epoch / tau)``
(all of a region's keys share one slot). Older epochs have decayed to nothing and expire.

``tau = half_life / ln 2`` (the offline trending table's half-life). A Lua script applies an
event and its ``evt`` marker in the region's slot; events without a region are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from vidrec.events import settings
from vidrec.events.keys import trending_key, trending_marker
from vidrec.events.scripts import run_scripts
from vidrec.events.streams import Client
from vidrec.schema import EngagementEvent, EventType

HOUR_MS = 3_600_000
WEIGHTS: dict[EventType, float] = {
    EventType.CLICK: 1.0,
    EventType.WATCH: 1.0,
    EventType.LIKE: 2.0,
    EventType.COMMENT: 2.0,
    EventType.SHARE: 3.0,
}
"""What one event adds to its video's trending score (before decay); others add nothing."""

# KEYS: set, marker  ARGV: increment, video, ttl, keep, set ttl
_APPLY = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class Decay:
    """The decay arithmetic: which epoch an event falls in and what it adds there."""

    def __init__(
        self,
        half_life_h: float = settings.TRENDING_HALF_LIFE_H,
        epoch_h: float = settings.TRENDING_EPOCH_H,
    ) -> None:
        self.tau_ms = half_life_h * HOUR_MS / math.log(2)
        self.epoch_ms = int(epoch_h * HOUR_MS)

    def epoch(self, ts: int) -> int:
        return ts // self.epoch_ms

    def increment(self, weight: float, ts: int) -> float:
        """``weight * exp((ts - epoch_start) / tau)``: at most ``exp(epoch / tau)`` × weight."""
        return weight * math.exp((ts - self.epoch(ts) * self.epoch_ms) / self.tau_ms)

    def value(self, stored: float, epoch: int, now_ms: int) -> float:
        """A stored score of ``epoch`` as the decayed score at ``now_ms``."""
        return stored * math.exp((epoch * self.epoch_ms - now_ms) / self.tau_ms)


class TrendingWriter:
    """ZINCRBY of decayed weights into the region's set, once per event."""

    def __init__(self, client: Client, ttl_s: int, decay: Decay | None = None,
                 keep: int = settings.TRENDING_KEEP) -> None:  # fmt: skip
        self.client = client
        self.ttl_s = ttl_s
        self.decay = decay or Decay()
        self.keep = keep
        self._apply = client.register_script(_APPLY)

    def _script_args(self, event: EngagementEvent) -> tuple[list[str], list[Any]] | None:
        weight = WEIGHTS.get(event.type, 0.0)
        if not weight or not event.region:
            return None
        epoch = self.decay.epoch(event.ts)
        keys = [trending_key(event.region, epoch), trending_marker(event.event_id, event.region)]
        set_ttl = 3 * self.decay.epoch_ms // 1000
        increment = repr(self.decay.increment(weight, event.ts))
        return keys, [increment, event.video_id, self.ttl_s, self.keep, set_ttl]

    def apply(self, event: EngagementEvent) -> bool | None:
        """True: applied now; False: applied before (duplicate); None: not counted here."""
        return self.apply_many([event])[0]

    def apply_many(self, events: Sequence[EngagementEvent]) -> list[bool | None]:
        """:meth:`apply` for a batch in one pipelined round trip per node."""
        return run_scripts(self.client, self._apply, [self._script_args(e) for e in events])

    def top(self, region: str, k: int, now_ms: int) -> list[tuple[int, float]]:
        """The ``k`` best ``(video_id, decayed score at now_ms)`` of ``region``."""
        epoch = self.decay.epoch(now_ms)
        keys = [trending_key(region, epoch - 1), trending_key(region, epoch)]
        weights = {keys[0]: math.exp(-self.decay.epoch_ms / self.decay.tau_ms), keys[1]: 1.0}
        rows: list[tuple[bytes, float]] = self.client.zunion(weights, withscores=True)  # type: ignore[assignment]
        scores = {int(v): self.decay.value(s, epoch, now_ms) for v, s in rows}
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
