"""Online feature stores: packed vectors by entity and id, read in bulk.

All stores share one key layout, :func:`vidrec.contracts.keys.key_for`:
``"<entity>:{b<k>}:<id>"`` with ``k = id % n_buckets``. The ``{b<k>}`` hash tag sends every key
of a bucket to one Redis Cluster slot, so reading 500 candidates is at most ``n_buckets`` MGETs
(one per slot), not 500 round trips. The standalone store uses the same keys so data can move
between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, TypeVar

import numpy as np
import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, RedisClusterException

from vidrec.config import FeatureConfig, RedisConfig
from vidrec.contracts.keys import USER_ENTITY as USER_ENTITY
from vidrec.contracts.keys import VIDEO_ENTITY as VIDEO_ENTITY
from vidrec.contracts.keys import key_for as key_for
from vidrec.contracts.keys import keys_for as keys_for
from vidrec.contracts.keys import tag_of_bucket
from vidrec.features.async_redis import AsyncPools
from vidrec.features.resp import ClusterRead, mget_command, plan_cluster_read, resp_command

DEFAULT_BUCKETS = FeatureConfig().n_buckets
T = TypeVar("T")


def _check_lengths(ids: Sequence[int], blobs: Sequence[bytes]) -> None:
    if len(ids) != len(blobs):
        raise ValueError(f"put_many: {len(ids)} ids but {len(blobs)} blobs")


class OnlineStore(Protocol):
    """Bulk key-value access to packed feature vectors."""

    def put_many(self, entity: str, ids: Sequence[int], blobs: Sequence[bytes]) -> None: ...

    def get_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]: ...

    async def aget_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        """:meth:`get_many` from the event loop (the serving path's reads)."""
        ...

    def get_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        """Raw keys in one round trip (keys of several entities that share a bucket/slot)."""
        ...

    async def aget_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`get_keys` from the event loop."""
        ...

    def delete_many(self, entity: str, ids: Sequence[int]) -> None: ...

    def close(self) -> None: ...


class InMemoryStore:
    """A dict: for tests and single-process demos."""

    def __init__(self, n_buckets: int = DEFAULT_BUCKETS) -> None:
        self.n_buckets = n_buckets
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put_many(self, entity: str, ids: Sequence[int], blobs: Sequence[bytes]) -> None:
        _check_lengths(ids, blobs)
        with self._lock:
            self._data.update(zip(keys_for(entity, ids, self.n_buckets), blobs, strict=True))

    def get_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        return self.get_keys(keys_for(entity, ids, self.n_buckets))

    async def aget_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        return self.get_many(entity, ids)

    async def aget_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.get_keys(keys)

    def get_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._data.get(k) for k in keys]

    def delete_many(self, entity: str, ids: Sequence[int]) -> None:
        with self._lock:
            for key in keys_for(entity, ids, self.n_buckets):
                self._data.pop(key, None)

    def close(self) -> None:
        self._data.clear()


class RedisStore:
    """Standalone Redis: one MGET per read, one pipelined MSET per write."""

    def __init__(
        self,
        client: redis.Redis,
        n_buckets: int = DEFAULT_BUCKETS,
        async_pools: AsyncPools | None = None,
        address: str = "",
    ) -> None:
        self.client = client
        self.n_buckets = n_buckets
        self._async, self._address = async_pools, address  # reads on the event loop

    @classmethod
    def from_config(cls, cfg: RedisConfig, n_buckets: int = DEFAULT_BUCKETS) -> RedisStore:
        from vidrec.security.redis_conn import connection_kwargs, tls_url

        client = redis.Redis.from_url(
            tls_url(cfg), socket_timeout=cfg.socket_timeout_s,
            max_connections=cfg.max_concurrency, **connection_kwargs(cfg),
        )  # fmt: skip
        kw = client.connection_pool.connection_kwargs
        return cls(client, n_buckets, AsyncPools(cfg), f"{kw['host']}:{kw['port']}")

    def put_many(self, entity: str, ids: Sequence[int], blobs: Sequence[bytes]) -> None:
        _check_lengths(ids, blobs)
        if ids:
            self.client.mset(dict(zip(keys_for(entity, ids, self.n_buckets), blobs, strict=True)))

    def get_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        return self.get_keys(keys_for(entity, ids, self.n_buckets))

    def get_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        return list(self.client.mget(keys)) if keys else []  # type: ignore[arg-type]

    async def aget_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        """:meth:`get_many` on the event loop when built from a config, else in a thread."""
        if not len(ids):
            return []
        if self._async is None:
            return await asyncio.to_thread(self.get_many, entity, ids)
        packed = mget_command(entity, np.asarray(ids, dtype=np.int64), self.n_buckets)
        replies = await self._async.exchange({self._address: (packed, 1)})
        return list(replies[self._address][0])

    async def aget_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`get_keys` on the event loop when built from a config, else in a thread."""
        if not keys:
            return []
        if self._async is None:
            return await asyncio.to_thread(self.get_keys, keys)
        packed = resp_command(b"MGET", *(k.encode() for k in keys))
        replies = await self._async.exchange({self._address: (packed, 1)})
        return list(replies[self._address][0])

    def delete_many(self, entity: str, ids: Sequence[int]) -> None:
        if ids:
            self.client.delete(*keys_for(entity, ids, self.n_buckets))

    def close(self) -> None:
        self.client.close()


class RedisClusterStore:
    """Redis Cluster: keys grouped by hash slot, one MGET/MSET per slot, bounded concurrency.

    ``mget_nonatomic`` partitions keys by slot and sends one MGET per slot through a cluster
    pipeline (one round trip per node). A semaphore caps the calls in flight from this process
    at ``max_concurrency``: the cluster client degrades badly with hundreds of them.
    """

    def __init__(
        self,
        client: RedisCluster,
        n_buckets: int = DEFAULT_BUCKETS,
        max_concurrency: int = 32,
        async_pools: AsyncPools | None = None,
    ) -> None:
        self.client = client
        self.n_buckets = n_buckets
        self._async = async_pools  # reads on the event loop; None: in a thread
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._slot_of_bucket: dict[int, int] = {}
        self._routes: dict[int, str] = {}  # bucket -> node name, cleared on any cluster fault
        self._pools: dict[str, redis.ConnectionPool] = {}

    @classmethod
    def from_config(cls, cfg: RedisConfig, n_buckets: int = DEFAULT_BUCKETS) -> RedisClusterStore:
        from vidrec.security.redis_conn import connection_kwargs, tls_url

        client = RedisCluster.from_url(
            tls_url(cfg), socket_timeout=cfg.socket_timeout_s, **connection_kwargs(cfg)
        )
        return cls(client, n_buckets, cfg.max_concurrency, AsyncPools(cfg))

    def put_many(self, entity: str, ids: Sequence[int], blobs: Sequence[bytes]) -> None:
        _check_lengths(ids, blobs)
        if ids:
            mapping = dict(zip(keys_for(entity, ids, self.n_buckets), blobs, strict=True))
            with self._slots:
                self.client.mset_nonatomic(mapping)

    def get_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        """One pipelined round trip per node, one MGET per bucket: the read path of every
        candidate set. redis-py's ``mget_nonatomic`` does the same through the cluster
        pipeline at ~3× the client CPU of plain MGETs; any cluster fault here (a moved slot,
        a failed node) forgets the cached routes and falls back to it, since it follows
        redirects and refreshes the map."""
        if not len(ids):
            return []
        with self._slots:
            try:
                return self._mget_by_node(entity, ids)
            except (redis.ConnectionError, redis.ResponseError, KeyError):
                self._routes.clear()
                return list(self.client.mget_nonatomic(keys_for(entity, ids, self.n_buckets)))

    async def aget_many(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        """:meth:`get_many` on the event loop (no worker thread) when built from a config;
        a cluster fault falls back to :meth:`get_many` in a thread, which follows redirects."""
        if not len(ids):
            return []
        if self._async is not None:
            plan = self._plan(entity, ids)
            try:
                return plan.assemble(await self._async.exchange(plan.commands))
            except (redis.ConnectionError, redis.ResponseError, KeyError):
                self._routes.clear()
        return await asyncio.to_thread(self.get_many, entity, ids)

    def _plan(self, entity: str, ids: Sequence[int]) -> ClusterRead:
        """Each node's MGETs (one per bucket) and where their values go."""
        ids_array = np.asarray(ids, dtype=np.int64)
        return plan_cluster_read(entity, ids_array, self.n_buckets, self._route)

    def _mget_by_node(self, entity: str, ids: Sequence[int]) -> list[bytes | None]:
        """One MGET per bucket, every node's MGETs written at once before any reply is read
        (the nodes work in parallel), as raw RESP on a pooled connection: redis-py's
        pipeline object, and even its key helpers, cost more Python per key than the read."""
        plan = self._plan(entity, ids)
        sent = []
        try:
            for name, (packed, k) in plan.commands.items():
                pool = self._pools[name]
                conn = pool.get_connection()
                sent.append((pool, conn, name, k))
                conn.send_packed_command([packed])
            replies = {name: [conn.read_response() for _ in range(k)] for _, conn, name, k in sent}
        except BaseException:
            for _, conn, _, _ in sent:  # replies may be left unread: never reuse these sockets
                conn.disconnect()
            raise
        finally:
            for pool, conn, _, _ in sent:
                pool.release(conn)
        return plan.assemble(replies)

    def _route(self, bucket: int) -> str:
        """The name of the node serving ``bucket``'s slot (cached until a fault clears it)."""
        name = self._routes.get(bucket)
        if name is None:
            node = self.client.nodes_manager.get_node_from_slot(self._bucket_slot(bucket))
            name = self._routes[bucket] = node.name
            self._pools[name] = self.client.get_redis_connection(node).connection_pool
        return name

    def _bucket_slot(self, bucket: int) -> int:
        slot = self._slot_of_bucket.get(bucket)
        if slot is None:
            slot = self._slot_of_bucket[bucket] = self.client.keyslot(tag_of_bucket(bucket))
        return slot

    def get_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        with self._slots:
            slot = self.client.keyslot(keys[0])
            if all(self.client.keyslot(k) == slot for k in keys[1:]):  # one hash tag: one MGET
                found = on_owner(self.client, keys[0], lambda node: node.mget(keys))
                return list(found)  # type: ignore[arg-type]  # bytes: no decode_responses
            return list(self.client.mget_nonatomic(keys))

    async def aget_keys(self, keys: Sequence[str]) -> list[bytes | None]:
        """:meth:`get_keys` on the event loop for keys of one slot (a user's context: one
        hash tag); anything else, or a cluster fault, in a thread through :meth:`get_keys`."""
        if not keys:
            return []
        slot = self.client.keyslot(keys[0])
        if self._async is not None and all(self.client.keyslot(k) == slot for k in keys[1:]):
            name = self.client.nodes_manager.get_node_from_slot(slot).name
            packed = resp_command(b"MGET", *(k.encode() for k in keys))
            try:
                return list((await self._async.exchange({name: (packed, 1)}))[name][0])
            except (redis.ConnectionError, redis.ResponseError):
                refresh_slots(self.client)
        return await asyncio.to_thread(self.get_keys, keys)

    def delete_many(self, entity: str, ids: Sequence[int]) -> None:
        # DEL of several keys must stay within one slot: delete bucket by bucket.
        by_bucket: dict[int, list[str]] = {}
        for i in ids:
            by_bucket.setdefault(int(i) % self.n_buckets, []).append(
                key_for(entity, int(i), self.n_buckets)
            )
        with self._slots:
            for keys in by_bucket.values():
                self.client.delete(*keys)

    def close(self) -> None:
        self.client.close()


def on_owner(client: redis.Redis | RedisCluster, key: str, call: Callable[[redis.Redis], T]) -> T:
    """``call(node)`` on the client of the node that owns ``key``'s slot.

    One command through the cluster client costs several times its plain-client CPU (slot
    lookup, retries, node bookkeeping in Python); the hot path sends single-slot commands
    straight to the owner. A stale slot map (MOVED/ASK) or a lost node falls back to the
    cluster client, which follows the redirect and refreshes its map.
    """
    if not isinstance(client, RedisCluster):
        return call(client)
    try:
        node = client.nodes_manager.get_node_from_slot(client.keyslot(key))
        return call(client.get_redis_connection(node))
    except (redis.ConnectionError, AskError):  # MovedError is an AskError
        return call(client)  # type: ignore[arg-type]  # same command API, cluster-routed


def node_client(client: redis.Redis | RedisCluster, key: str) -> redis.Redis:
    """The plain client of the master holding ``key`` (``client`` itself when standalone).

    For commands whose keys the cluster client cannot locate by itself (XREAD, XREADGROUP)
    it asks the server (COMMAND GETKEYS) first, two extra round trips per call: an idle poll
    loop pays them several times a second.
    """
    if isinstance(client, RedisCluster):
        return client.get_redis_connection(client.get_node_from_key(key))
    return client


def refresh_slots(client: redis.Redis | RedisCluster) -> None:
    """After a failed per-node call: re-learn the slot map (best effort; the caller retries)."""
    if isinstance(client, RedisCluster):
        with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):
            client.nodes_manager.initialize()


def make_store(
    cfg: RedisConfig | Literal["memory"], n_buckets: int = DEFAULT_BUCKETS
) -> OnlineStore:
    """The store a config asks for: ``"memory"``, standalone Redis or Redis Cluster."""
    if cfg == "memory":
        return InMemoryStore(n_buckets)
    if not isinstance(cfg, RedisConfig):
        raise ValueError(f"make_store: expected RedisConfig or 'memory', got {cfg!r}")
    if cfg.cluster:
        return RedisClusterStore.from_config(cfg, n_buckets)
    return RedisStore.from_config(cfg, n_buckets)
