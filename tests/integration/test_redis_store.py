"""Redis stores against real servers: byte-exact round trips and MGETs grouped by slot."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis
from redis.cluster import RedisCluster

from vidrec.config import RedisConfig
from vidrec.features.codec import pack_many, unpack_many
from vidrec.features.materialize import materialize
from vidrec.features.spec import VIDEO_SPEC
from vidrec.features.stores import (
    VIDEO_ENTITY,
    RedisClusterStore,
    RedisStore,
    key_for,
    make_store,
)

sys.path.insert(0, str(Path(__file__).parent))
from redis_servers import RedisClusterInfo, redis_cluster, standalone_redis

pytestmark = pytest.mark.integration

N_BUCKETS = 16
UPDATED_AT = 1_700_000_000_123


def _table(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    ids = rng.choice(10_000_000, size=n, replace=False)
    return pl.DataFrame(
        {"video_id": ids, "vector": rng.standard_normal((n, VIDEO_SPEC.dim), dtype=np.float32)}
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterInfo]:
    with redis_cluster(masters=3) as info:
        yield info


def _mget_calls(info: RedisClusterInfo) -> int:
    total = 0
    for port in info.ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        total += int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
        client.close()
    return total


def test_cluster_materialise_and_read_back_byte_for_byte(cluster: RedisClusterInfo) -> None:
    cfg = RedisConfig(url=cluster.url, cluster=True, max_concurrency=4)
    store = make_store(cfg, n_buckets=N_BUCKETS)
    assert isinstance(store, RedisClusterStore)
    table = _table(1_200)
    ids = table["video_id"].to_list()
    written = materialize(table, VIDEO_SPEC, store, VIDEO_ENTITY, UPDATED_AT, 250, progress=False)
    assert written == table.height
    expected = pack_many(VIDEO_SPEC, table["vector"].to_numpy(), UPDATED_AT)
    assert store.get_many(VIDEO_ENTITY, ids) == expected
    # Keys really are spread over the masters (one client per node sees only its slots).
    per_node = [redis.Redis(port=p).dbsize() for p in cluster.ports]
    assert sum(per_node) == table.height and all(n > 0 for n in per_node)
    values, updated, present = unpack_many(VIDEO_SPEC, store.get_many(VIDEO_ENTITY, ids[:10]))
    assert present.all() and (updated == UPDATED_AT).all()
    np.testing.assert_array_equal(values, table["vector"].to_numpy()[:10])
    store.delete_many(VIDEO_ENTITY, ids[:5])
    assert store.get_many(VIDEO_ENTITY, ids[:6])[:5] == [None] * 5
    store.close()


def test_cluster_500_key_read_is_one_mget_per_slot(cluster: RedisClusterInfo) -> None:
    store = RedisClusterStore(RedisCluster(host="127.0.0.1", port=cluster.ports[1]), N_BUCKETS)
    table = _table(2_000)
    materialize(table, VIDEO_SPEC, store, VIDEO_ENTITY, UPDATED_AT, 500, progress=False)
    ids = [*table["video_id"].to_list()[:500], 123_456_789]  # one missing key
    slots = {store.client.keyslot(key_for(VIDEO_ENTITY, i, N_BUCKETS)) for i in ids}
    assert 1 < len(slots) <= N_BUCKETS
    before = _mget_calls(cluster)
    got = store.get_many(VIDEO_ENTITY, ids)
    after = _mget_calls(cluster)
    assert got[-1] is None and all(b is not None for b in got[:-1])
    assert 0 < after - before <= len(slots)
    store.close()


def test_cluster_read_survives_a_stale_slot_map(cluster: RedisClusterInfo) -> None:
    """The per-node fast path sends MGETs where the client's slot map says; when the map is
    wrong (a resharded slot), the node answers MOVED and the read falls back to the cluster
    client, which follows the redirect: the caller still gets every value."""
    store = RedisClusterStore(RedisCluster(host="127.0.0.1", port=cluster.ports[0]), N_BUCKETS)
    table = _table(300)
    materialize(table, VIDEO_SPEC, store, VIDEO_ENTITY, UPDATED_AT, 300, progress=False)
    ids = table["video_id"].to_list()
    expected = store.get_many(VIDEO_ENTITY, ids)
    assert all(b is not None for b in expected)
    cache = store.client.nodes_manager.slots_cache
    slot = store.client.keyslot(key_for(VIDEO_ENTITY, ids[0], N_BUCKETS))
    owner = cache[slot][0]
    wrong = next(n for nodes in cache.values() for n in nodes if n.name != owner.name)
    cache[slot] = [wrong]  # the fast path now asks a node that does not own the slot
    bucket = ids[0] % N_BUCKETS
    store._routes[bucket] = wrong.name  # ... and so does its cached route
    assert store.get_many(VIDEO_ENTITY, ids) == expected
    # A single-slot read (the user context: one hash tag) goes straight to the owner too.
    tagged = [k for k in (key_for(VIDEO_ENTITY, i, N_BUCKETS) for i in ids)
              if store.client.keyslot(k) == slot]  # fmt: skip
    cache[slot] = [wrong]
    assert store.get_keys(tagged) == [expected[ids.index(int(k.rsplit(":", 1)[1]))]
                                      for k in tagged]  # fmt: skip
    store.close()


def test_cluster_reads_on_the_event_loop_match_the_blocking_reads(
    cluster: RedisClusterInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aget_many`` (asyncio connections, no thread) returns what ``get_many`` returns, one
    MGET per slot; a stale route falls back to the blocking path; a cancelled read leaves no
    reply pending on a pooled connection."""
    store = make_store(RedisConfig(url=cluster.url, cluster=True), n_buckets=N_BUCKETS)
    assert isinstance(store, RedisClusterStore)
    table = _table(900)
    materialize(table, VIDEO_SPEC, store, VIDEO_ENTITY, UPDATED_AT, 300, progress=False)
    ids = [*table["video_id"].to_list()[:500], 987_654_321]
    expected = store.get_many(VIDEO_ENTITY, ids)
    assert expected[-1] is None and all(b is not None for b in expected[:-1])
    slots = {store.client.keyslot(key_for(VIDEO_ENTITY, i, N_BUCKETS)) for i in ids}

    async def reads() -> None:
        with monkeypatch.context() as m:  # the loop path must not touch the blocking one
            m.setattr(store, "get_many", lambda *_: pytest.fail("blocking read used"))
            before = _mget_calls(cluster)
            assert await store.aget_many(VIDEO_ENTITY, ids) == expected
            assert _mget_calls(cluster) - before == len(slots)
        for _ in range(5):  # cancelled mid-read: its connection is closed, not reused dirty
            task = asyncio.create_task(store.aget_many(VIDEO_ENTITY, ids))
            await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert await store.aget_many(VIDEO_ENTITY, ids[::-1]) == expected[::-1]
        keys = [key_for(VIDEO_ENTITY, i, N_BUCKETS) for i in ids]
        one_slot = [k for k in keys if store.client.keyslot(k) == store.client.keyslot(keys[0])]
        with monkeypatch.context() as m:  # one slot (a user's context): on the loop too
            m.setattr(store, "get_keys", lambda *_: pytest.fail("blocking read used"))
            assert await store.aget_keys(one_slot) == [expected[keys.index(k)] for k in one_slot]
        assert await store.aget_keys(keys) == expected  # several slots: the blocking path
        owner = store._route(ids[0] % N_BUCKETS)
        store._routes[ids[0] % N_BUCKETS] = next(n for n in store._pools if n != owner)
        assert await store.aget_many(VIDEO_ENTITY, ids) == expected  # MOVED -> fallback

    asyncio.run(reads())
    store.close()


def test_standalone_round_trip_and_single_mget() -> None:
    with standalone_redis() as url:
        store = make_store(RedisConfig(url=url, cluster=False), n_buckets=N_BUCKETS)
        assert isinstance(store, RedisStore)
        table = _table(700)
        ids = table["video_id"].to_list()
        materialize(table, VIDEO_SPEC, store, VIDEO_ENTITY, UPDATED_AT, 300, progress=False)
        client = redis.Redis.from_url(url)

        def calls() -> int:
            return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))

        before = calls()
        assert store.get_many(VIDEO_ENTITY, ids) == pack_many(
            VIDEO_SPEC, table["vector"].to_numpy(), UPDATED_AT
        )
        assert calls() - before == 1
        assert asyncio.run(store.aget_many(VIDEO_ENTITY, ids[::-1])) == pack_many(
            VIDEO_SPEC, table["vector"].to_numpy()[::-1], UPDATED_AT
        )
        assert calls() - before == 2
        assert client.exists(key_for(VIDEO_ENTITY, ids[0], N_BUCKETS)) == 1
        store.delete_many(VIDEO_ENTITY, ids)
        assert client.dbsize() == 0
        client.close()
        store.close()
