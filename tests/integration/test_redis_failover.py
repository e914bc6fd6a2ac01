"""Failover chaos: a Redis master that has a replica is SIGKILLed under load (issue 12).

A real cluster of 3 masters with 1 replica each (``cluster-node-timeout`` 1 s, 6 redis-server
processes). Under load, each with its own client as in production: the API's event intake
(:class:`RedisStreamEventWriter`, XADD), the event processor applying those events with its
Lua scripts, and the feature store (:class:`RedisClusterStore`) writing and reading back, on
threads and on the event loop. The master holding event partition 0 is killed. The replica
must take over, no write acknowledged to its caller may be missing afterwards (writes refused
in the failover window surface as exceptions, and are counted), and our clients must route to
the new master by themselves. The recovery times are printed (``-s``) for the docs'
chaos table (docs/benchmarks.md, "Faults under load").
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from tests.integration.redis_servers import (
    ClusterNode,
    RedisClusterInfo,
    cluster_nodes,
    redis_cluster,
)
from vidrec.api.events import RedisStreamEventWriter
from vidrec.config import Config, load_config
from vidrec.contracts.keys import VIDEO_ENTITY, key_for, tag_of_bucket, user_marker
from vidrec.events.processor import EventProcessor, Tally
from vidrec.events.streams import parse, stream_names
from vidrec.features.stores import RedisClusterStore
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.schema import EngagementEvent, EventType
from vidrec.security import redis_conn

pytestmark = pytest.mark.integration
NODE_TIMEOUT_MS = 1000
PARTITIONS = 4
USERS = 40  # user_id % PARTITIONS picks the stream: ten users per partition
LOAD_BEFORE_S = 1.5  # steady load before the kill
LOAD_AFTER_S = 2.0  # and after every component has recovered
RECOVERY_LIMIT_S = 20.0  # node timeout + election + our clients' refresh, with margin
DRAIN_S = 30.0
PACE_S = 0.004  # per operation and thread: a few hundred ops/s, the 2-core box stays usable


@dataclass
class Op:
    """One call made by a load thread: when it started and ended, where it went, if it worked."""

    start: float
    end: float
    on_victim: bool
    ok: bool
    error: str = ""


@dataclass
class Ledger:
    """What the callers were told: the ground truth the cluster is checked against afterwards."""

    acked: dict[int, bytes] = field(default_factory=dict)  # store writes acknowledged
    accepted: list[EngagementEvent] = field(default_factory=list)  # events the intake accepted
    store_ops: list[Op] = field(default_factory=list)  # write + read back, one per id
    intake_ops: list[Op] = field(default_factory=list)
    wrong_reads: list[str] = field(default_factory=list)  # an acked value read back different


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterInfo]:
    with redis_cluster(masters=3, replicas_per_master=1, node_timeout_ms=NODE_TIMEOUT_MS) as info:
        yield info


def config(info: RedisClusterInfo) -> Config:
    return load_config({
        "VIDREC_REDIS__URL": info.url,
        "VIDREC_REDIS__CLUSTER": "true",
        "VIDREC_SERVING__EVENT_STREAM_PREFIX": "fo",
        "VIDREC_SERVING__EVENT_PARTITIONS": str(PARTITIONS),
    })  # fmt: skip


def owner(nodes: list[ClusterNode], slot: int) -> ClusterNode:
    """The master serving ``slot`` in this view of the cluster."""
    for node in nodes:
        for part in node.slots:
            lo, _, hi = part.partition("-")
            if node.is_master and not node.failed and int(lo) <= slot <= int(hi or lo):
                return node
    raise AssertionError(f"no master serves slot {slot}: {nodes}")


def intake_load(writer: RedisStreamEventWriter, ledger: Ledger, victim_streams: set[str],
                stop: threading.Event) -> None:  # fmt: skip
    """One event per call, like a client posting to /events: accepted = the call returned."""

    async def post() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            user = i % USERS
            ev = EngagementEvent(
                event_id=f"fo-{i}", user_id=user, video_id=i % 50, type=EventType.IMPRESSION,
                ts=int(time.time() * 1000), region="north",
            )  # fmt: skip
            start, on_victim = time.monotonic(), writer.stream_for(user) in victim_streams
            try:
                await writer.append([ev])
            except Exception as exc:  # refused: the caller is told (503 at the API) and retries
                ledger.intake_ops.append(Op(start, time.monotonic(), on_victim, False, repr(exc)))
            else:
                ledger.accepted.append(ev)
                ledger.intake_ops.append(Op(start, time.monotonic(), on_victim, True))
            await asyncio.sleep(PACE_S)

    asyncio.run(post())


def store_load(store: RedisClusterStore, ledger: Ledger, victim_buckets: set[int],
               stop: threading.Event) -> None:  # fmt: skip
    """Write a new id, then read it back with a few older acked ids through every read path
    (a thread, the event loop, one slot on the loop). An op is ok only when the write was
    acked and every read returned every value."""
    loop = asyncio.new_event_loop()
    try:
        for i in itertools.count():
            if stop.is_set():
                return
            blob, start = f"value-{i}".encode(), time.monotonic()
            on_victim = i % store.n_buckets in victim_buckets
            try:
                store.put_many(VIDEO_ENTITY, [i], [blob])
            except (redis.RedisError, RedisClusterException) as exc:
                ledger.store_ops.append(Op(start, time.monotonic(), on_victim, False, repr(exc)))
                time.sleep(PACE_S)
                continue
            ledger.acked[i] = blob
            older = [j for j in range(max(0, i - 40), i, 7) if j in ledger.acked]
            ids, key = [i, *older], key_for(VIDEO_ENTITY, i, store.n_buckets)
            want = [ledger.acked[j] for j in ids]
            try:
                reads = {
                    "get_many": store.get_many(VIDEO_ENTITY, ids),
                    "aget_many": loop.run_until_complete(store.aget_many(VIDEO_ENTITY, ids)),
                    "aget_keys": [  # one slot: the user-context read, straight to the owner
                        *loop.run_until_complete(store.aget_keys([key])),
                        *want[1:],
                    ],
                }
            except (redis.RedisError, RedisClusterException) as exc:
                ledger.store_ops.append(Op(start, time.monotonic(), on_victim, False, repr(exc)))
            else:
                wrong = [
                    f"{how}({ids}) = {v}, want {want}" for how, v in reads.items() if v != want
                ]
                ledger.wrong_reads += wrong
                ok = not wrong
                ledger.store_ops.append(Op(start, time.monotonic(), on_victim, ok))
            time.sleep(PACE_S)
    finally:
        loop.close()


def first_ok_after(ops: list[Op], t: float) -> float | None:
    """Seconds from ``t`` to the end of the first op on the victim that started after ``t``
    and worked (a call in flight across the kill proves nothing)."""
    ends = [op.end for op in ops if op.on_victim and op.ok and op.start > t]
    return min(ends) - t if ends else None


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic()


def test_master_killed_under_load_fails_over_and_loses_no_acknowledged_write(
    cluster: RedisClusterInfo,
) -> None:
    cfg = config(cluster)
    store = RedisClusterStore.from_config(cfg.redis, cfg.features.n_buckets)
    writer = RedisStreamEventWriter(  # as vidrec.api.compose builds it, on the store's client
        store.client,
        cfg.serving.event_stream_prefix,
        PARTITIONS,
        max_stream_len=cfg.events.max_stream_len,
        retry_after_s=cfg.events.retry_after_s,
        breaker=CircuitBreaker.of(cfg.serving, "events"),
    )
    processor_client = redis_conn.client(cfg.redis, socket_timeout=2.0)
    tally = Tally()
    processor = EventProcessor(processor_client, cfg, consumer="p", count=100, block_ms=20,
                               claim_min_idle_ms=1000, observer=tally)  # fmt: skip
    assert isinstance(processor_client, RedisCluster)

    before = cluster_nodes(cluster.ports[0])
    streams = stream_names(cfg.serving.event_stream_prefix, PARTITIONS)
    victim = owner(before, store.client.keyslot(streams[0]))
    (replica,) = [n for n in before if n.master_id == victim.node_id]
    victim_streams = {s for s in streams if owner(before, store.client.keyslot(s)) == victim}
    victim_buckets = {
        b for b in range(store.n_buckets)
        if owner(before, store.client.keyslot(tag_of_bucket(b))) == victim
    }  # fmt: skip
    assert victim_buckets, "no feature bucket on the victim: the store check would be vacuous"
    survivor = next(n.port for n in before if n.port not in (victim.port, replica.port))

    ledger = Ledger()
    stop_load, stop_processor = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=intake_load, args=(writer, ledger, victim_streams, stop_load)),
        threading.Thread(target=store_load, args=(store, ledger, victim_buckets, stop_load)),
        threading.Thread(target=processor.run, args=(stop_processor,)),
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(LOAD_BEFORE_S)
        assert ledger.accepted and ledger.acked and tally.n_processed, "no load before the kill"
        assert all(op.ok for op in ledger.store_ops + ledger.intake_ops), "faults before the kill"

        killed_at = time.monotonic()
        cluster.kill(victim.port)

        def promoted() -> bool:
            now = {n.node_id: n for n in cluster_nodes(survivor)}
            new = now[replica.node_id]
            return new.is_master and new.slots == victim.slots and now[victim.node_id].failed

        failover_s = wait_for(promoted, RECOVERY_LIMIT_S, "replica promoted") - killed_at

        def recovered() -> bool:
            ops = (ledger.store_ops, ledger.intake_ops)
            return all(first_ok_after(list(o), killed_at) is not None for o in ops)

        wait_for(recovered, RECOVERY_LIMIT_S, "store and intake working on the victim's slots")
        time.sleep(LOAD_AFTER_S)
    finally:
        stop_load.set()
        for t in threads[:2]:
            t.join(timeout=30)
    accepted_ids = {ev.event_id for ev in ledger.accepted}
    checker = RedisCluster(host="127.0.0.1", port=survivor)
    markers = [user_marker(ev.event_id, ev.user_id, cfg.features.n_buckets)
               for ev in ledger.accepted]  # fmt: skip

    def all_applied() -> bool:
        return all(v is not None for v in checker.mget_nonatomic(markers))

    try:
        wait_for(all_applied, DRAIN_S, "every accepted event applied by the processor")
    finally:
        stop_processor.set()
        threads[2].join(timeout=30)

    store_s = first_ok_after(ledger.store_ops, killed_at)
    intake_s = first_ok_after(ledger.intake_ops, killed_at)
    failed_writes = [op for op in ledger.store_ops if not op.ok]
    refused = [op for op in ledger.intake_ops if not op.ok]
    errors = Counter(op.error.split(":")[0][:40] for op in failed_writes + refused)
    print(
        f"\nfailover: replica {replica.port} promoted {failover_s:.2f} s after master "
        f"{victim.port} was killed (cluster-node-timeout {NODE_TIMEOUT_MS} ms); first "
        f"read+write through RedisClusterStore on its slots {store_s:.2f} s after the kill; "
        f"first event accepted on its partitions {intake_s:.2f} s after; store writes acked "
        f"{len(ledger.acked)}, failed {len(failed_writes)}; events accepted "
        f"{len(ledger.accepted)}, refused {len(refused)}, all applied; processor faults "
        f"{tally.n_failed}; errors seen: {dict(errors)}"
    )

    # Failover happened: the replica serves the victim's slots, the victim is marked failed.
    after = {n.node_id: n for n in cluster_nodes(survivor)}
    assert after[replica.node_id].is_master and after[replica.node_id].slots == victim.slots
    assert after[victim.node_id].failed
    # The failover window was hit, and its failures reached the callers as exceptions.
    assert failed_writes and refused, "nothing failed: the kill did not hit the load"
    assert all(op.end >= killed_at for op in failed_writes + refused)
    # No acknowledged store write lost: every acked id reads back its value, through our
    # store and through a fresh client.
    assert not ledger.wrong_reads
    ids = sorted(ledger.acked)
    assert store.get_many(VIDEO_ENTITY, ids) == [ledger.acked[i] for i in ids]
    fresh = RedisClusterStore(checker, cfg.features.n_buckets)
    assert fresh.get_many(VIDEO_ENTITY, ids) == [ledger.acked[i] for i in ids]
    # No accepted event lost: each is in its stream and was applied (its marker exists).
    in_streams: set[str] = set()
    for s in streams:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = checker.xrange(s)  # type: ignore[assignment]
        for entry_id, fields in entries:
            ev = parse(s, entry_id, fields).event
            in_streams.add(ev.event_id if ev else "")
    assert accepted_ids <= in_streams
    # Our clients route to the new master by themselves (the stale route was refreshed).
    bucket = min(victim_buckets)
    assert store._route(bucket) == f"127.0.0.1:{replica.port}"
    assert store.client.get_node_from_key(tag_of_bucket(bucket)).port == replica.port
    assert store_s is not None and store_s < RECOVERY_LIMIT_S
    assert intake_s is not None and intake_s < RECOVERY_LIMIT_S
    checker.close()
    store.close()
    processor_client.close()
