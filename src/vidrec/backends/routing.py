"""The ranker routing table as serving sees it: read from Redis, cached for a few seconds.

The rollout operator writes the table (:class:`~vidrec.contracts.routing.RoutingTable` JSON)
under ``ServingConfig.routing_key`` (the ``gateway-table`` router), or into a ConfigMap (the
``gateway-table-configmap`` router) that the chart mounts into serving pods: then
``ServingConfig.routing_file`` names the mounted file and the cache reads that instead.
Serving re-reads it at most every ``ttl_s``, so a weight
change reaches every replica within seconds while a request never waits on Redis for it. A
missing key means the default table. When Redis fails or the value does not parse, the last
good table stays in force (counted in ``read_errors`` / ``parse_errors``): a rollout hiccup
must not take the feed down.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from vidrec.backends.calls import BlockingCalls
from vidrec.contracts.routing import (
    DEFAULT_TABLE,
    SPLITS,
    UNKNOWN_VARIANT,
    RoutingTable,
    VariantRoute,
    assign_variant,
)
from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.resilience import CircuitBreaker


def file_reader(path: str | Path) -> Callable[[], bytes | None]:
    """Read a mounted ConfigMap's table; a missing file (no rollout yet) is the default."""
    file = Path(path)

    def read() -> bytes | None:
        try:
            return file.read_bytes()
        except FileNotFoundError:
            return None

    return read


def parse_table(raw: bytes | None, default: RoutingTable = DEFAULT_TABLE) -> RoutingTable:
    """The table stored under the routing key; ``default`` when the key is absent."""
    return default if raw is None else RoutingTable.from_json(raw)


def default_table(split: str) -> RoutingTable:
    """Before any rollout: one ``stable`` variant; under an upstream split it asks for no
    version, and every answer is the stable model's (:meth:`RoutingCache.answered_variant`)."""
    if split not in SPLITS:
        raise ValueError(f"VIDREC_SERVING__RANKER_SPLIT: must be one of {SPLITS}, got {split!r}")
    return dataclasses.replace(DEFAULT_TABLE, split=split)


class RoutingCache:
    """The current routing table, refreshed from Redis at most every ``ttl_s`` seconds."""

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        key: str,
        salt: str,
        *,
        ttl_s: float = 2.0,
        timeout_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        reader: Callable[[], bytes | None] | None = None,
        default: RoutingTable = DEFAULT_TABLE,
    ) -> None:
        self.client = client
        self.key = key
        self._reader = reader or self._from_redis
        self.salt = salt
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._calls = BlockingCalls(CircuitBreaker(3, ttl_s), 4)
        self._default = self._table = default
        self._read_at: float | None = None
        self.read_errors = 0
        self.parse_errors = 0

    @property
    def cached(self) -> RoutingTable:
        """The table in force now (no I/O)."""
        return self._table

    async def table(self) -> RoutingTable:
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self.ttl_s:
            return self._table
        self._read_at = now  # one refresh per ttl, even when it fails
        try:
            raw = await self._calls.run(self._reader, self.timeout_s)
            self._table = parse_table(raw, self._default)
        except (DependencyError, OSError):
            self.read_errors += 1
        except ValueError:
            self.parse_errors += 1
        return self._table

    def _from_redis(self) -> bytes | None:
        raw: bytes | None = self.client.get(self.key)  # type: ignore[assignment]
        return raw

    async def variant_for(self, key: str | int) -> VariantRoute:
        """The variant serving ``key`` (a user id, or a session for anonymous requests)."""
        return assign_variant(key, await self.table(), self.salt)

    def version_for_variant(self, variant: str) -> str:
        """Triton model version to ask for on behalf of ``variant`` ("" = whichever version the
        answering replica serves: under an upstream split, and for a variant not in the
        table)."""
        if self._table.upstream:
            return ""
        try:
            return str(self._table.route(variant).model_version)
        except KeyError:
            return ""

    def answered_variant(self, asked: str, version: str) -> str:
        """The variant to label a request with, from the model ``version`` Triton ran.

        Under a serving split the asked variant's version is what ran (Triton refuses a
        version it does not hold), unless the table changed in between; under an upstream
        split the version is all serving knows. A version in no variant is ``unknown``.
        """
        table = self._table
        if table is self._default:  # nothing published yet: one model, one variant
            return table.variants[0].name
        if not version.isdigit():
            return UNKNOWN_VARIANT if table.upstream else asked
        ran = int(version)
        if not table.upstream and any(
            r.name == asked and r.model_version == ran for r in table.variants
        ):
            return asked
        return table.variant_of_version(ran) or UNKNOWN_VARIANT
