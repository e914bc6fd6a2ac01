"""Trending per region, the write side: each event adds its decayed weight once.

The arithmetic and the read side are :mod:`vidrec.contracts.trending` (serving reads the same
sets). A Lua script applies an event and its ``evt`` marker in the region's slot; events
without a region are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vidrec.config import EventsConfig
from vidrec.contracts.keys import trending_key, trending_marker
from vidrec.contracts.trending import Decay, TrendingSets
from vidrec.events.scripts import run_scripts
from vidrec.events.streams import Client
from vidrec.schema import EngagementEvent, EventType

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


class TrendingWriter(TrendingSets):
    """ZINCRBY of decayed weights into the region's set, once per event (and the reads)."""

    def __init__(self, client: Client, ttl_s: int, decay: Decay | None = None,
                 keep: int | None = None) -> None:  # fmt: skip
        defaults = EventsConfig()
        super().__init__(client, decay or Decay.of(defaults))
        self.ttl_s = ttl_s
        self.keep = defaults.trending_keep if keep is None else keep
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
