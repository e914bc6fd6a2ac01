"""Per-video engagement counters over sliding windows (5 min, 1 h) and CTR estimates.

One hash per video (``vc:{b<k>}:<id>``, the video's bucket) holds one counter field per
(kind, minute) — ``i:<minute>`` impressions, ``c:`` clicks, ``w:`` watches — and the derived
fields serving reads: ``imp_5m clk_5m wat_5m imp_1h clk_1h wat_1h ctr_5m ctr_1h``. Windows
end at the latest event minute seen for the video (event time, so a replayed or simulated log
gives the same numbers as a live one); minutes older than the longest window are dropped.
The final state depends only on the set of events applied, not their order. CTRs are
Beta-smoothed with the offline prior (``FeatureConfig.ctr_prior_*``) so a video with three
impressions does not claim a CTR of 0 or 1.

A Lua script applies one event and its ``evv`` marker atomically in the video's slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vidrec.config import FeatureConfig
from vidrec.contracts.keys import counter_key, video_marker
from vidrec.events.scripts import run_scripts
from vidrec.events.streams import Client
from vidrec.schema import EngagementEvent, EventType

KIND = {EventType.IMPRESSION: "i", EventType.CLICK: "c", EventType.WATCH: "w"}
WINDOWS_MIN = {"5m": 5, "1h": 60}
MINUTE_MS = 60_000

# KEYS: counters, marker  ARGV: kind, minute, ttl, prior_n, prior_mean
_APPLY = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
local minute = tonumber(ARGV[2])
local clock = tonumber(redis.call('HGET', KEYS[1], 'clock') or minute)
if minute > clock then clock = minute end
if minute <= clock - 60 then return 1 end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':' .. minute, 1)
redis.call('HSET', KEYS[1], 'clock', clock)
local sums = {['5m'] = {i = 0, c = 0, w = 0}, ['1h'] = {i = 0, c = 0, w = 0}}
local flat = redis.call('HGETALL', KEYS[1])
for j = 1, #flat, 2 do
  local kind, m = string.match(flat[j], '^([icw]):(%d+)$')
  if kind then
    m = tonumber(m)
    if m <= clock - 60 then
      redis.call('HDEL', KEYS[1], flat[j])
    else
      local n = tonumber(flat[j + 1])
      sums['1h'][kind] = sums['1h'][kind] + n
      if m > clock - 5 then sums['5m'][kind] = sums['5m'][kind] + n end
    end
  end
end
local prior_n, prior_mean = tonumber(ARGV[4]), tonumber(ARGV[5])
for w, s in pairs(sums) do
  local ctr = (s.c + prior_n * prior_mean) / (s.i + prior_n)
  redis.call('HSET', KEYS[1], 'imp_' .. w, s.i, 'clk_' .. w, s.c, 'wat_' .. w, s.w,
             'ctr_' .. w, string.format('%.6f', ctr))
end
return 1
"""


@dataclass(frozen=True)
class VideoCounters:
    """The derived fields of one video's hash (zeros / prior CTR when absent)."""

    impressions: dict[str, int]  # window -> count
    clicks: dict[str, int]
    watches: dict[str, int]
    ctr: dict[str, float]


class CounterWriter:
    """Applies impression/click/watch events to their video's counters, once each."""

    def __init__(self, client: Client, n_buckets: int, ttl_s: int, cfg: FeatureConfig) -> None:
        self.client = client
        self.n_buckets = n_buckets
        self.ttl_s = ttl_s
        self.cfg = cfg
        self._apply = client.register_script(_APPLY)

    def _script_args(self, event: EngagementEvent) -> tuple[list[str], list[Any]] | None:
        kind = KIND.get(event.type)
        if kind is None:
            return None
        keys = [counter_key(event.video_id, self.n_buckets),
                video_marker(event.event_id, event.video_id, self.n_buckets)]  # fmt: skip
        args: list[Any] = [kind, event.ts // MINUTE_MS, self.ttl_s,
                           self.cfg.ctr_prior_impressions, self.cfg.ctr_prior_mean]  # fmt: skip
        return keys, args

    def apply(self, event: EngagementEvent) -> bool | None:
        """True: applied now; False: applied before (duplicate); None: not counted here."""
        return self.apply_many([event])[0]

    def apply_many(self, events: Sequence[EngagementEvent]) -> list[bool | None]:
        """:meth:`apply` for a batch in one pipelined round trip per node."""
        return run_scripts(self.client, self._apply, [self._script_args(e) for e in events])

    def read(self, video_id: int) -> VideoCounters:
        stored: dict[bytes, bytes] = self.client.hgetall(counter_key(video_id, self.n_buckets))  # type: ignore[assignment]
        raw = {k.decode(): float(v) for k, v in stored.items()}
        prior = self.cfg.ctr_prior_mean

        def per_window(name: str) -> dict[str, int]:
            return {w: int(raw.get(f"{name}_{w}", 0)) for w in WINDOWS_MIN}

        return VideoCounters(
            impressions=per_window("imp"),
            clicks=per_window("clk"),
            watches=per_window("wat"),
            ctr={w: raw.get(f"ctr_{w}", prior) for w in WINDOWS_MIN},
        )
