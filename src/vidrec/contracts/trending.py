"""Trending per region: the decayed sorted sets the event processor writes and serving reads.

The score of a video at time ``t`` is ``sum_i w_i * exp(-(t - t_i) / tau)``. Dividing by the
common factor ``exp(-t / tau)`` leaves ``sum_i w_i * exp(t_i / tau)``: each event adds a
fixed amount (ZINCRBY) and older scores never need rewriting. ``exp(t_i / tau)`` overflows a
double after ~700 tau, so the base time moves every epoch: events go to
``tr:{r:<region>}:<epoch>`` (:func:`~vidrec.contracts.keys.trending_key`) scaled by
``exp((t_i - epoch_start) / tau)``, and a reader combines the current and previous epoch's sets
with ZUNION weights ``exp(-epoch / tau)`` (all of a region's keys share one slot). Older epochs
have decayed to nothing and expire. ``tau = half_life / ln 2``.
"""

from __future__ import annotations

import math

import redis
from redis.cluster import RedisCluster

from vidrec.config import EventsConfig
from vidrec.contracts.keys import trending_key

HOUR_MS = 3_600_000


class Decay:
    """The decay arithmetic: which epoch an event falls in and what it adds there."""

    def __init__(self, half_life_h: float, epoch_h: float) -> None:
        self.tau_ms = half_life_h * HOUR_MS / math.log(2)
        self.epoch_ms = int(epoch_h * HOUR_MS)

    @classmethod
    def of(cls, events: EventsConfig) -> Decay:
        return cls(events.trending_half_life_h, events.trending_epoch_h)

    def epoch(self, ts: int) -> int:
        return ts // self.epoch_ms

    def increment(self, weight: float, ts: int) -> float:
        """``weight * exp((ts - epoch_start) / tau)``: at most ``exp(epoch / tau)`` × weight."""
        return weight * math.exp((ts - self.epoch(ts) * self.epoch_ms) / self.tau_ms)

    def value(self, stored: float, epoch: int, now_ms: int) -> float:
        """A stored score of ``epoch`` as the decayed score at ``now_ms``."""
        return stored * math.exp((epoch * self.epoch_ms - now_ms) / self.tau_ms)


class TrendingSets:
    """The read side: a region's best videos by decayed score."""

    def __init__(self, client: redis.Redis | RedisCluster, decay: Decay) -> None:
        self.client = client
        self.decay = decay

    def top(self, region: str, k: int, now_ms: int) -> list[tuple[int, float]]:
        """The ``k`` best ``(video_id, decayed score at now_ms)`` of ``region``."""
        epoch = self.decay.epoch(now_ms)
        keys = [trending_key(region, epoch - 1), trending_key(region, epoch)]
        weights = {keys[0]: math.exp(-self.decay.epoch_ms / self.decay.tau_ms), keys[1]: 1.0}
        rows: list[tuple[bytes, float]] = self.client.zunion(weights, withscores=True)  # type: ignore[assignment]
        scores = {int(v): self.decay.value(s, epoch, now_ms) for v, s in rows}
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
