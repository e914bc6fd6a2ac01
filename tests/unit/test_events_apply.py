"""Applying an event twice changes nothing (real standalone Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
import redis

from tests.integration.redis_servers import standalone_redis
from vidrec.config import load_config
from vidrec.contracts.catalogue import Catalogue
from vidrec.events.processor import EventProcessor, Tally
from vidrec.events.streams import Client, Entry
from vidrec.features.session import SessionStore
from vidrec.features.stores import RedisStore
from vidrec.schema import EngagementEvent, EventType

pytestmark = pytest.mark.integration  # starts a real redis-server
CFG = load_config({})
T0 = 1_600_000_000_000


def snapshot(client: Client) -> dict[str, object]:
    """Every key's value (strings, hashes, sorted sets), for exact before/after equality."""
    out: dict[str, object] = {}
    keys: list[bytes] = client.keys("*")  # type: ignore[assignment]
    for raw in keys:
        key = raw.decode()
        kind: bytes = client.type(key)  # type: ignore[assignment]
        if kind == b"string":
            out[key] = client.get(key)
        elif kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
    return out


def event(i: int, type_: EventType, user: int = 1, video: int = 10, **kw: object) -> Entry:
    ev = EngagementEvent(event_id=f"e{i}", user_id=user, video_id=video, type=type_,
                         ts=T0 + i * 1000, region="north", device="ios", **kw)  # type: ignore[arg-type]  # fmt: skip
    return Entry("vidrec:events:1", f"{i}-0", ev)


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    with standalone_redis() as url:
        c = redis.Redis.from_url(url)
        yield c
        c.close()


def processor(client: redis.Redis, tally: Tally) -> EventProcessor:
    table = pl.DataFrame({"video_id": [10, 11], "creator_id": [500, 501],
                          "primary_category": [1, 2], "upload_ts": [0, 0],
                          "popularity": [0.0, 0.0]})  # fmt: skip
    return EventProcessor(client, CFG, catalogue=Catalogue.from_table(table), observer=tally)


def test_every_event_type_applied_twice_leaves_identical_state(client: redis.Redis) -> None:
    client.flushall()
    tally = Tally()
    proc = processor(client, tally)
    batch = [
        event(1, EventType.IMPRESSION),
        event(2, EventType.CLICK),
        event(3, EventType.WATCH, watch_ms=5000),
        event(4, EventType.LIKE),
        event(5, EventType.NOT_INTERESTED, video=11),
        event(6, EventType.UPLOAD, user=77, video=999),
        event(7, EventType.NOT_INTERESTED, video=999),  # creator from the upload, not catalogue
    ]
    for entry in batch:
        proc.apply([entry])
    once = snapshot(client)
    for entry in batch:
        proc.apply([entry])
    proc.apply(batch)  # and as one batch, with the same event twice in it
    proc.apply([batch[1], batch[1]])
    assert snapshot(client) == once
    assert tally.n_duplicates == 6 + 6 + 2  # every counted event; the upload has no unit

    state = SessionStore(RedisStore(client, CFG.features.n_buckets)).get(1)
    assert state.recent_watches == (10,) and state.seen == (10,)
    assert state.not_interested_videos == {11, 999}
    assert state.not_interested_creators == {501, 77}
    assert (state.region, state.device) == ("north", "ios")
    counts = proc.counters.read(10)
    assert (counts.impressions["5m"], counts.clicks["1h"], counts.watches["1h"]) == (1, 1, 1)
    prior = CFG.features.ctr_prior_impressions
    expected_ctr = (1 + prior * CFG.features.ctr_prior_mean) / (1 + prior)
    assert counts.ctr["5m"] == pytest.approx(expected_ctr, abs=1e-6)


def test_windows_drop_old_minutes_whatever_the_arrival_order(client: redis.Redis) -> None:
    def run(order: list[int]) -> tuple[dict[str, int], dict[str, int]]:
        client.flushall()
        proc = processor(client, Tally())
        minutes = {0: 0, 1: 1, 2: 30, 3: 58, 4: 61}  # event index -> minute
        entries = [
            Entry("s", f"{i}-0", EngagementEvent(
                event_id=f"i{i}", user_id=1, video_id=10, type=EventType.IMPRESSION,
                ts=T0 + minutes[i] * 60_000))
            for i in order
        ]  # fmt: skip
        proc.apply(entries)
        counts = proc.counters.read(10)
        return counts.impressions, counts.clicks

    forward = run([0, 1, 2, 3, 4])
    assert forward == ({"5m": 2, "1h": 3}, {"5m": 0, "1h": 0})  # 5 min: 58, 61; 1 h: +30
    assert run([4, 3, 2, 1, 0]) == forward


def test_engagement_is_credited_to_the_variant_that_served_the_request(
    client: redis.Redis,
) -> None:
    import asyncio

    from vidrec.backends.impressions import RedisStreamImpressionSink
    from vidrec.pipeline.base import Candidate

    sink = RedisStreamImpressionSink(client, "vidrec:impressions", 1000, timeout_s=5.0)
    served = [Candidate(10, "two_tower", 1.0)]
    asyncio.run(sink.log("req-a", "canary", 1, served, T0))
    asyncio.run(sink.log("req-b", "stable", 2, served, T0))
    tally = Tally()
    p = processor(client, tally)
    batch = [
        event(100, EventType.IMPRESSION, request_id="req-a"),
        event(101, EventType.CLICK, request_id="req-a"),
        event(102, EventType.WATCH, request_id="req-a", watch_ms=4000, video_duration_ms=8000),
        event(103, EventType.IMPRESSION, user=2, request_id="req-b"),
        event(104, EventType.IMPRESSION, user=2, request_id="req-unknown"),  # not credited
    ]
    p.apply(batch)
    p.apply(batch)  # a redelivery credits nothing twice
    assert tally.by_variant == {
        ("canary", "impression"): 1,
        ("canary", "click"): 1,
        ("canary", "watch"): 1,
        ("stable", "impression"): 1,
    }
