"""Traffic routers: weights round-trip through the live object, and serving sees the change.

The gateway table runs on a REAL standalone redis-server. The Kubernetes routers run against
an in-memory object store that applies JSON merge patches (RFC 7386) as the API server does
for custom objects, so what is asserted is the object a cluster would hold.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from vidrec.backends.routing import RoutingCache
from vidrec.rollout.routers import (
    ROUTERS,
    GatewayAPIRouter,
    GatewayTableRouter,
    KServeRouter,
    NopRouter,
    RouteTarget,
    UpstreamSplit,
)
from vidrec.rollout.routers.upstream import label_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from redis_servers import standalone_redis

from tests.crd_schemas import merge_patch

KEY = "vidrec:routing:test"
TARGET = RouteTarget(model="ranker", stable="3", candidate="4")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with standalone_redis() as url:
        yield url


@pytest.fixture
def table_router(redis_url: str) -> Iterator[GatewayTableRouter]:
    client = redis.Redis.from_url(redis_url)
    client.delete(KEY)
    yield GatewayTableRouter(TARGET, client=client, key=KEY)
    client.close()


@pytest.mark.integration  # starts a real redis-server
def test_gateway_table_round_trip_and_serving_sees_it(
    table_router: GatewayTableRouter, redis_url: str
) -> None:
    table_router.reconcile()
    assert table_router.get_weights() == (100, 0)
    table_router.set_weights(75, 25)
    assert table_router.get_weights() == (75, 25)

    cache = RoutingCache(redis.Redis.from_url(redis_url), KEY, "salt", ttl_s=0)
    table = asyncio.run(cache.table())
    assert [(r.name, r.weight_percent, r.model_version) for r in table.variants] == [
        ("stable", 75, 3),
        ("canary", 25, 4),
    ]
    users = [asyncio.run(cache.variant_for(u)).name for u in range(2000)]
    assert 0.2 < users.count("canary") / len(users) < 0.3


@pytest.mark.integration  # starts a real redis-server
def test_gateway_table_is_sticky_and_bumps_revision(table_router: GatewayTableRouter) -> None:
    table_router.set_weights(90, 10)
    before = table_router.table()
    table_router.set_weights(50, 50)
    after = table_router.table()
    assert before is not None and after is not None and after.revision == before.revision + 1
    cache = RoutingCache(table_router.client, KEY, "salt", ttl_s=0)  # type: ignore[arg-type]
    # Users on the canary at 10% stay there at 50%: only stable users move.
    table_router.set_weights(90, 10)
    early = {u for u in range(3000) if asyncio.run(cache.variant_for(u)).name == "canary"}
    table_router.set_weights(50, 50)
    late = {u for u in range(3000) if asyncio.run(cache.variant_for(u)).name == "canary"}
    assert early and early < late


@pytest.mark.integration  # starts a real redis-server
def test_reconcile_keeps_a_rollout_in_flight(table_router: GatewayTableRouter) -> None:
    table_router.set_weights(60, 40)
    table_router.reconcile()  # operator restart: the live weights stay
    assert table_router.get_weights() == (60, 40)


@pytest.mark.integration  # starts a real redis-server
@pytest.mark.parametrize(("weights", "version"), [((0, 100), 4), ((100, 0), 3)])
def test_finalize_leaves_the_winner(
    table_router: GatewayTableRouter, weights: tuple[int, int], version: int
) -> None:
    table_router.set_weights(*weights)
    table_router.finalize()
    table = table_router.table()
    assert table is not None
    assert [(r.name, r.weight_percent, r.model_version) for r in table.variants] == [
        ("stable", 100, version)
    ]
    assert table_router.get_weights() == (100, 0)


@pytest.mark.parametrize(
    ("stable", "candidate", "field"),
    [(-1, 101, "stable"), (50, 60, "stable \\+ candidate"), (100, True, "candidate")],
)
@pytest.mark.integration  # starts a real redis-server
def test_bad_weights_name_the_field(
    table_router: GatewayTableRouter, stable: int, candidate: int, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        table_router.set_weights(stable, candidate)


def test_gateway_table_needs_triton_versions() -> None:
    target = RouteTarget(model="ranker", stable="3", candidate="s3://models/ranker/4")
    with pytest.raises(ValueError, match="candidate"):
        GatewayTableRouter(target, client=redis.Redis(), key=KEY)


class MergePatchObjects:
    """Custom objects by name; PATCH is a JSON merge patch (null deletes a key)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def get_namespaced_custom_object(self, *args: str) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.obj = merge_patch(self.obj, args[-1])
        return self.obj


def test_gateway_api_weights_backend_refs() -> None:
    route = {
        "spec": {
            "rules": [
                {
                    "matches": [{"path": {"value": "/v2"}}],
                    "backendRefs": [{"name": "ranker-stable", "port": 8000}],
                },
                {"backendRefs": [{"name": "other", "port": 80}]},
            ]
        }
    }
    api = MergePatchObjects(route)
    router = GatewayAPIRouter(TARGET, api=api)
    router.reconcile()
    assert router.get_weights() == (100, 0)
    router.set_weights(80, 20)
    assert router.get_weights() == (80, 20)
    refs = api.obj["spec"]["rules"][0]["backendRefs"]
    assert refs == [
        {"name": "ranker-stable", "port": 8000, "weight": 80},
        {"name": "ranker-canary", "port": 8000, "weight": 20},
    ]
    assert api.obj["spec"]["rules"][0]["matches"] == [{"path": {"value": "/v2"}}]
    assert api.obj["spec"]["rules"][1] == {"backendRefs": [{"name": "other", "port": 80}]}
    router.set_weights(0, 100)
    router.finalize()
    assert router.get_weights() == (0, 100)


def test_gateway_api_without_stable_backend_names_it() -> None:
    api = MergePatchObjects({"spec": {"rules": [{"backendRefs": [{"name": "x"}]}]}})
    with pytest.raises(ValueError, match="ranker-stable"):
        GatewayAPIRouter(TARGET, api=api).set_weights(90, 10)


def test_kserve_knative_canary_percent_and_promotion() -> None:
    target = RouteTarget(model="ranker", stable="s3://m/ranker/3", candidate="s3://m/ranker/4")
    isvc = {
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "triton"}, "storageUri": target.stable}}
        }
    }
    api = MergePatchObjects(isvc)
    router = KServeRouter(target, api=api)
    router.reconcile()
    predictor = api.obj["spec"]["predictor"]
    assert predictor["model"] == {"modelFormat": {"name": "triton"}, "storageUri": target.candidate}
    assert predictor["canaryTrafficPercent"] == 0 and router.get_weights() == (100, 0)
    router.set_weights(70, 30)
    assert api.obj["spec"]["predictor"]["canaryTrafficPercent"] == 30
    # The live split in status wins over the spec (KServe has not caught up yet).
    traffic = [
        {"revisionName": "ranker-predictor-00001", "percent": 90, "latestRevision": False},
        {"revisionName": "ranker-predictor-00002", "percent": 10, "latestRevision": True},
    ]
    api.obj["status"] = {"components": {"predictor": {"traffic": traffic}}}
    assert router.get_weights() == (90, 10)
    del api.obj["status"]
    router.set_weights(0, 100)
    router.finalize()
    assert "canaryTrafficPercent" not in api.obj["spec"]["predictor"]
    assert api.obj["spec"]["predictor"]["model"]["storageUri"] == target.candidate


def test_kserve_rollback_restores_stable_uri() -> None:
    target = RouteTarget(model="ranker", stable="s3://m/ranker/3", candidate="s3://m/ranker/4")
    api = MergePatchObjects({"spec": {"predictor": {"model": {"storageUri": target.stable}}}})
    router = KServeRouter(target, api=api)
    router.reconcile()
    router.set_weights(100, 0)
    router.finalize()
    assert api.obj["spec"]["predictor"] == {"model": {"storageUri": target.stable}}


STANDARD_ISVC = {
    "metadata": {"annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
    "spec": {
        "predictor": {
            "name": "v3",
            "minReplicas": 2,
            "model": {"modelFormat": {"name": "triton"}, "storageUri": "s3://m/ranker/3"},
        }
    },
}


def test_kserve_standard_mode_dark_launches_weights_and_promotes_by_name() -> None:
    target = RouteTarget(model="ranker", stable="s3://m/ranker/3", candidate="s3://m/ranker/4")
    api = MergePatchObjects(copy.deepcopy(STANDARD_ISVC))
    router = KServeRouter(target, api=api)
    router.reconcile()
    router.reconcile()  # idempotent: one entry, not two
    (entry,) = api.obj["spec"]["canary"]
    assert entry["trafficPercent"] == 0 and router.get_weights() == (100, 0)
    # The candidate is the stable predictor (replicas, format) on the candidate's model.
    assert entry["predictor"]["minReplicas"] == 2
    assert entry["predictor"]["model"]["storageUri"] == target.candidate
    assert entry["predictor"]["name"] == router.canary != "v3"
    assert "canaryTrafficPercent" not in api.obj["spec"]["predictor"]  # Knative-only field
    router.set_weights(80, 20)
    assert api.obj["spec"]["canary"][0]["trafficPercent"] == 20
    # The controller's view wins once it reports.
    api.obj["status"] = {"canaryStatuses": [{"name": router.canary, "trafficPercent": 10}]}
    assert router.get_weights() == (90, 10)
    del api.obj["status"]
    router.set_weights(0, 100)
    router.finalize()
    predictor = api.obj["spec"]["predictor"]
    assert api.obj["spec"]["canary"] == []
    assert predictor["name"] == router.canary and predictor["minReplicas"] == 2
    assert predictor["model"]["storageUri"] == target.candidate
    assert router.get_weights() == (0, 100)


def test_kserve_standard_mode_rollback_keeps_other_canaries_and_the_stable() -> None:
    target = RouteTarget(model="ranker", stable="5", candidate="6", mode="standard")
    isvc = copy.deepcopy(STANDARD_ISVC)
    del isvc["metadata"]  # the mode comes from params here
    someone_elses = {"predictor": {"name": "shadow"}, "trafficPercent": 0}
    isvc["spec"]["canary"] = [someone_elses]
    api = MergePatchObjects(isvc)
    router = KServeRouter(target, api=api)
    assert router.canary == "v6"
    router.reconcile()
    router.set_weights(60, 40)
    assert [e["trafficPercent"] for e in api.obj["spec"]["canary"]] == [0, 40]
    router.set_weights(100, 0)
    router.finalize()
    assert api.obj["spec"]["canary"] == [someone_elses]
    assert api.obj["spec"]["predictor"] == STANDARD_ISVC["spec"]["predictor"]


def test_kserve_unknown_mode_names_the_param() -> None:
    target = RouteTarget(model="ranker", stable="1", candidate="2", mode="blue")
    router = KServeRouter(target, api=MergePatchObjects(copy.deepcopy(STANDARD_ISVC)))
    with pytest.raises(ValueError, match=r"trafficRouter.params.mode"):
        router.reconcile()


def test_nop_router_and_registry() -> None:
    router = NopRouter(TARGET)
    router.set_weights(40, 60)
    assert router.get_weights() == (40, 60)
    assert set(ROUTERS) == {
        "gateway-table",
        "gateway-table-configmap",
        "kserve",
        "gateway-api",
        "nop",
    }
    assert isinstance(ROUTERS["nop"](TARGET), NopRouter)


@pytest.mark.integration  # starts a real redis-server
def test_upstream_split_publishes_the_labels_serving_reads(redis_url: str) -> None:
    """Under KServe the split is KServe's; the operator mirrors it into an ``upstream`` table
    whose versions let serving label each answer by the version Triton ran."""
    target = RouteTarget(
        model="ranker", stable="s3://m/ranker/3", candidate="s3://m/ranker/4",
        stable_model_version=3, candidate_model_version=4,
    )  # fmt: skip
    api = MergePatchObjects({"spec": {"predictor": {"model": {"storageUri": target.stable}}}})
    client = redis.Redis.from_url(redis_url)
    client.delete(KEY)
    labels = GatewayTableRouter(target, client=client, key=KEY)
    labels.split = "upstream"
    router = UpstreamSplit(KServeRouter(target, api=api), labels)
    cache = RoutingCache(client, KEY, "salt", ttl_s=0)  # type: ignore[arg-type]

    def served() -> tuple[list[tuple[str, float, int]], str]:
        table = asyncio.run(cache.table())
        return [(r.name, r.weight_percent, r.model_version) for r in table.variants], table.split

    router.reconcile()
    assert served() == ([("stable", 100, 3), ("canary", 0, 4)], "upstream")
    router.set_weights(80, 20)
    assert api.obj["spec"]["predictor"]["canaryTrafficPercent"] == 20  # KServe moves traffic
    assert served() == ([("stable", 80, 3), ("canary", 20, 4)], "upstream")
    # Serving asks for no version and labels by what ran.
    assert cache.version_for_variant("canary") == ""
    assert [cache.answered_variant("unattributed", v) for v in ("4", "3", "9")] == [
        "canary",
        "stable",
        "unknown",
    ]
    router.set_weights(0, 100)
    router.finalize()
    assert served() == ([("stable", 100, 4)], "upstream")  # the promoted version is stable now
    assert cache.answered_variant("unattributed", "4") == "stable"
    client.close()


@pytest.mark.integration  # the label table's Redis client connects to a real redis-server
def test_label_table_is_upstream_with_the_triton_versions_of_storage_uris(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDREC_REDIS__URL", redis_url)
    monkeypatch.setenv("VIDREC_REDIS__CLUSTER", "false")
    target = RouteTarget(
        model="ranker", stable="s3://m/a", candidate="s3://m/b",
        stable_model_version=3, candidate_model_version=4,
    )  # fmt: skip
    table = label_table(target)  # the Redis routing key, where serving reads by default
    assert table.split == "upstream"
    assert (table.stable_version, table.candidate_version) == (3, 4)
    with pytest.raises(ValueError, match="candidate: must be a Triton model version"):
        label_table(RouteTarget(model="ranker", stable="3", candidate="s3://m/b"))
