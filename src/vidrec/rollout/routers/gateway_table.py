"""The vidrec gateway's own router: the user-hash routing table serving reads per request.

The table (:class:`~vidrec.contracts.routing.RoutingTable` JSON) holds a ``stable`` and a
``canary`` variant with their Triton model versions, stable first: users hash to buckets,
variants own contiguous bucket ranges, so raising the canary weight only moves users from
stable to canary and each user keeps their variant (sticky) between steps. ``finalize``
collapses the table to one ``stable`` variant on the version that won.

One class holds the table logic; the two stores are small subclasses: a Redis key
(``ServingConfig.routing_key``, what serving reads locally) and a ConfigMap in a cluster.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import RedisCluster

from vidrec.config import load_config
from vidrec.contracts.routing import SERVING_SPLIT, RoutingTable, VariantRoute
from vidrec.rollout.routers.base import RouteTarget, check_weights, kube_api_client
from vidrec.security.redis_conn import client as redis_client

STABLE, CANARY = "stable", "canary"
CONFIGMAP_KEY = "routing.json"  # the ConfigMap's data key holding the table


class _TableRouter:
    """Routing-table logic over a store that reads and writes the table's JSON text.

    ``split`` says who splits the traffic: serving itself (these routers), or something
    upstream whose weights the table only mirrors so serving can label requests
    (:mod:`vidrec.rollout.routers.upstream`).
    """

    split = SERVING_SPLIT

    def __init__(self, target: RouteTarget) -> None:
        self.target = target
        self.stable_version = target.stable_model_version or target.version_number("stable")
        self.candidate_version = target.candidate_model_version or target.version_number(
            "candidate"
        )

    def _read(self) -> str | bytes | None:
        raise NotImplementedError

    def _write(self, text: str) -> None:
        raise NotImplementedError

    def table(self) -> RoutingTable | None:
        raw = self._read()
        return None if raw is None else RoutingTable.from_json(raw)

    def _put(self, routes: tuple[VariantRoute, ...]) -> None:
        current = self.table()
        revision = 0 if current is None else current.revision + 1
        self._write(RoutingTable(routes, revision=revision, split=self.split).to_json())

    def reconcile(self) -> None:
        """Write a 100/0 table for this rollout unless one with both variants is there."""
        current = self.table()
        if current is None or {r.name for r in current.variants} != {STABLE, CANARY}:
            self.set_weights(100, 0)

    def set_weights(self, stable: int, candidate: int) -> None:
        check_weights(stable, candidate)
        self._put(
            (
                VariantRoute(STABLE, stable, self.stable_version),
                VariantRoute(CANARY, candidate, self.candidate_version),
            )
        )

    def get_weights(self) -> tuple[int, int]:
        current = self.table()
        if current is None:
            return 100, 0
        weights = {r.name: round(r.weight_percent) for r in current.variants}
        return weights.get(STABLE, 0), weights.get(CANARY, 0)

    def finalize(self) -> None:
        won = self.candidate_version if self.get_weights()[1] == 100 else self.stable_version
        self._put((VariantRoute(STABLE, 100, won),))


class GatewayTableRouter(_TableRouter):
    """The table in a Redis key: what ``vidrec.backends.routing.RoutingCache`` reads."""

    def __init__(
        self,
        target: RouteTarget,
        *,
        client: redis.Redis | RedisCluster | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(target)
        cfg = load_config()
        self.key = key or cfg.serving.routing_key
        if client is None:  # AUTH and TLS as every vidrec Redis client has them
            client = redis_client(cfg.redis, socket_timeout=cfg.redis.socket_timeout_s)
        self.client = client

    def _read(self) -> bytes | None:
        raw: Any = self.client.get(self.key)
        return raw

    def _write(self, text: str) -> None:
        self.client.set(self.key, text)


class GatewayTableConfigMapRouter(_TableRouter):
    """The table in ConfigMap ``target.object_name`` (data key ``routing.json``)."""

    def __init__(self, target: RouteTarget, *, api: Any = None) -> None:
        super().__init__(target)
        if api is None:
            from kubernetes import client

            api = client.CoreV1Api(kube_api_client())
        self.api = api

    def _read(self) -> str | None:
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.api.read_namespaced_config_map(self.target.object_name, self.target.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = cm.data if not isinstance(cm, dict) else cm.get("data")
        return (data or {}).get(CONFIGMAP_KEY)

    def _write(self, text: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name, namespace = self.target.object_name, self.target.namespace
        try:
            self.api.patch_namespaced_config_map(name, namespace, {"data": {CONFIGMAP_KEY: text}})
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "metadata": {"name": name, "namespace": namespace},
                "data": {CONFIGMAP_KEY: text},
            }
            self.api.create_namespaced_config_map(namespace, body)
