"""Trending decay: ZINCRBY of exp(t/tau) weights ranks exactly like decayed sums."""

from __future__ import annotations

import math

import pytest
import redis

from tests.integration.redis_servers import standalone_redis
from vidrec.contracts.trending import HOUR_MS, Decay
from vidrec.events.trending import TrendingWriter
from vidrec.schema import EngagementEvent, EventType


def test_increment_is_weight_times_growth_since_epoch_start() -> None:
    d = Decay(half_life_h=6.0, epoch_h=24.0)
    start = 10 * d.epoch_ms
    assert d.increment(2.0, start) == pytest.approx(2.0)
    assert d.increment(1.0, start + 6 * HOUR_MS) == pytest.approx(2.0)  # one half-life
    # Stored at t, read at t + one half-life: half the weight.
    stored = d.increment(1.0, start + HOUR_MS)
    assert d.value(stored, 10, start + 7 * HOUR_MS) == pytest.approx(0.5)
    assert d.increment(1.0, start + d.epoch_ms - 1) < math.exp(24 / 6 * math.log(2)) + 1e-9


def click(i: int, video: int, ts: int, region: str = "north") -> EngagementEvent:
    return EngagementEvent(event_id=f"e{i}", user_id=i, video_id=video, type=EventType.CLICK,
                           ts=ts, region=region)  # fmt: skip


@pytest.mark.integration  # starts a real redis-server
def test_top_equals_decayed_sums_across_an_epoch_boundary() -> None:
    d = Decay(half_life_h=6.0, epoch_h=24.0)
    base = 100 * d.epoch_ms
    events = [click(0, 1, base - 3 * HOUR_MS), click(1, 1, base - 2 * HOUR_MS),
              click(2, 2, base + HOUR_MS), click(3, 3, base - 20 * HOUR_MS),
              click(4, 9, base, region="south")]  # fmt: skip
    now = base + 2 * HOUR_MS
    expected = {1: 0.0, 2: 0.0, 3: 0.0}
    for e in events[:4]:
        expected[e.video_id] += 0.5 ** ((now - e.ts) / (6 * HOUR_MS))
    with standalone_redis() as url:
        client = redis.Redis.from_url(url)
        writer = TrendingWriter(client, ttl_s=3600, decay=d)
        assert all(writer.apply(e) for e in events)
        assert writer.apply(events[0]) is False  # same event_id: no second increment
        top = writer.top("north", 10, now)
        assert [v for v, _ in top] == [1, 2, 3]
        for video, score in top:
            assert score == pytest.approx(expected[video], rel=1e-9)
        assert [v for v, _ in writer.top("south", 10, now)] == [9]
        client.close()
