"""Event consumers on a real 3-master cluster: crashes and redeliveries apply exactly once."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from tests.integration.redis_servers import redis_cluster
from vidrec.api.events import RedisStreamEventWriter
from vidrec.config import Config, load_config
from vidrec.events.event_log import read_events
from vidrec.events.lake import LakeWriter
from vidrec.events.processor import EventProcessor, Tally
from vidrec.events.sessions import apply_event
from vidrec.events.streams import parse, stream_names
from vidrec.events.trending import WEIGHTS, Decay
from vidrec.features.session import SessionState, SessionStore
from vidrec.features.stores import RedisClusterStore
from vidrec.schema import EngagementEvent, EventType

pytestmark = pytest.mark.integration
T0 = 1_600_000_000_000
TYPES = [EventType.IMPRESSION] * 5 + [EventType.CLICK, EventType.WATCH, EventType.LIKE,
                                      EventType.NOT_INTERESTED]  # fmt: skip


def config(prefix: str) -> Config:
    return load_config(
        {"VIDREC_SERVING__EVENT_STREAM_PREFIX": prefix, "VIDREC_SERVING__EVENT_PARTITIONS": "4"}
    )


def make_events(n: int, seed: int, start: int = 0) -> list[EngagementEvent]:
    rng = random.Random(seed)
    return [
        EngagementEvent(
            event_id=f"e{start + i}", user_id=rng.randrange(12), video_id=rng.randrange(20),
            type=rng.choice(TYPES), ts=T0 + (start + i) * 200, watch_ms=1000,
            region=rng.choice(["north", "south"]), request_id=f"r{i // 5}",
        )
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def client() -> Iterator[RedisCluster]:
    with redis_cluster() as info:
        c = RedisCluster.from_url(info.url)
        yield c
        c.close()


def append(client: RedisCluster, cfg: Config, events: list[EngagementEvent]) -> None:
    """XADD through the API's own writer (same streams, same encoding)."""
    writer = RedisStreamEventWriter(
        client, cfg.serving.event_stream_prefix, cfg.serving.event_partitions, timeout_s=5.0
    )
    asyncio.run(writer.append(events))


def drained(client: RedisCluster, cfg: Config, group: str) -> bool:
    streams = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)
    for s in streams:
        info = next(g for g in client.xinfo_groups(s) if g["name"] in (group, group.encode()))
        if info["pending"] or info["lag"]:
            return False
    return True


def run_until(target: Callable[[threading.Event], None], done: Callable[[], bool]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 20
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=10)
    assert done(), "consumer did not drain the streams in time"


def stream_events(client: RedisCluster, cfg: Config) -> list[EngagementEvent]:
    """Every entry, per stream in order (= per user in order)."""
    out = []
    for s in stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions):
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(s)  # type: ignore[assignment]
        out += [parse(s, i, f).event for i, f in entries]
    return [e for e in out if e is not None]


def test_processor_crash_and_redelivery_apply_each_event_once(client: RedisCluster) -> None:
    cfg = config("pe")
    first, second = make_events(200, seed=1), make_events(200, seed=2, start=200)
    retries = first[:10] + second[50:55]  # client retries: same event_id, new stream entries
    append(client, cfg, first + first[:10])
    tallies = [Tally() for _ in range(4)]

    def proc(name: str, tally: Tally, **kw: int) -> EventProcessor:
        return EventProcessor(client, cfg, consumer=name, observer=tally, count=20,
                              block_ms=20, **kw)  # type: ignore[arg-type]  # fmt: skip

    # 1. "dead" reads a batch, crashes halfway through applying it (no XACK).
    dead = proc("dead", tallies[0])
    dead.reader.ensure_groups()
    batch = dead.reader.read()
    assert batch
    dead.apply(batch[: len(batch) // 2])
    # 2. "b" starts, claims the dead consumer's entries, drains; stops cleanly.
    b = proc("b", tallies[1], claim_min_idle_ms=0)
    run_until(b.run, lambda: drained(client, cfg, "realtime"))
    # 3. More events; "b" applies a batch and dies before its XACK.
    append(client, cfg, second + second[50:55])
    batch = b.reader.read()
    assert batch
    b.apply(batch)
    # 4. "c" takes over: claims b's pending batch, drains the rest.
    c = proc("c", tallies[2], claim_min_idle_ms=0)
    run_until(c.run, lambda: drained(client, cfg, "realtime"))

    # Reference: one clean application of the distinct events, in stream order.
    distinct: dict[str, EngagementEvent] = {}
    for ev in stream_events(client, cfg):
        distinct.setdefault(ev.event_id, ev)
    assert len(distinct) == 400
    expected: dict[int, SessionState] = {}
    creators = c.creators
    for ev in distinct.values():
        state = expected.get(ev.user_id, SessionState())
        creator = creators(ev.video_id) if ev.type == EventType.NOT_INTERESTED else -1
        expected[ev.user_id] = apply_event(state, ev, creator, cfg.features.history_len)
    sessions = SessionStore(RedisClusterStore(client, cfg.features.n_buckets))
    for user, state in expected.items():
        assert sessions.get(user) == state
    by_video = Counter((e.video_id, e.type) for e in distinct.values())
    for video in range(20):
        got = c.counters.read(video)  # 400 events span 80 s: all inside both windows
        for window in ("5m", "1h"):
            assert got.impressions[window] == by_video[(video, EventType.IMPRESSION)]
            assert got.clicks[window] == by_video[(video, EventType.CLICK)]
            assert got.watches[window] == by_video[(video, EventType.WATCH)]
    decay, now = Decay.of(cfg.events), T0 + 400 * 200
    for region in ("north", "south"):
        want: dict[int, float] = {}
        for e in distinct.values():
            if e.region == region and e.type in WEIGHTS:
                decayed = math.exp(-(now - e.ts) / decay.tau_ms)
                want[e.video_id] = want.get(e.video_id, 0.0) + WEIGHTS[e.type] * decayed
        got_top = dict(c.trending.top(region, 50, now))
        assert got_top.keys() == want.keys()
        assert all(got_top[v] == pytest.approx(want[v], rel=1e-9) for v in want)
    processed = sum(t.n_processed for t in tallies)
    fresh = sum(t.n_lag for t in tallies)
    assert processed >= 400 + len(retries) and fresh == sum(
        1 for e in distinct.values() if e.type != EventType.UPLOAD
    )


def test_lake_writer_rerun_after_crash_holds_each_event_once(
    client: RedisCluster, tmp_path: Path
) -> None:
    cfg = config("lk")
    events = make_events(300, seed=3)
    events += [e.model_copy(update={"event_id": f"h{i}", "ts": e.ts + 3_600_000})
               for i, e in enumerate(events[:60])]  # a second hour partition  # fmt: skip
    append(client, cfg, events)
    lake = tmp_path / "lake"

    a = LakeWriter(client, cfg, lake, consumer="a", count=40, block_ms=20)
    a.step()  # recovery: nothing pending yet
    written = a.reader.read()
    a.write(written)  # files renamed into place ... crash before XACK
    a.reader.read()  # a second batch read, never written
    b = LakeWriter(client, cfg, lake, consumer="b", count=40, block_ms=20, claim_min_idle_ms=0,
                   max_events=10_000, max_age_s=0.0)  # fmt: skip
    run_until(b.run, lambda: drained(client, cfg, "lake"))

    table = read_events(lake)
    assert sorted(table["event_id"].to_list()) == sorted(e.event_id for e in events)
    assert {p.parent.name for p in lake.rglob("*.parquet")} == {"hour=12", "hour=13"}
    again = LakeWriter(client, cfg, lake, consumer="b", claim_min_idle_ms=0)
    assert again.step() == 0  # nothing pending: nothing rewritten
    assert read_events(lake).height == len(events)
