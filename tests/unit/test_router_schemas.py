"""The KServe and Gateway API routers against the real upstream CRD schemas.

Each router runs a whole rollout (reconcile, several weights, finalize after promotion and
after a rollback; KServe in both modes) against a store that merges every patch, applies the
CRD's defaults and validates the result against the vendored ``openAPIV3Schema`` of the served
version (``tests/vendor/crds/``, KServe v0.20.0 and Gateway API v1.6.1 standard), rejecting
an invalid write as the API server would. So every object state a router leaves behind is one
a cluster would accept (CEL rules and webhooks aside; see ``tests/crd_schemas.py``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.crd_schemas import (
    GATEWAY_HTTPROUTE,
    KSERVE_ISVC,
    Invalid,
    SchemaCheckedObjects,
    errors,
    served_schema,
    to_json_schema,
)
from vidrec.rollout.routers import GatewayAPIRouter, KServeRouter, RouteTarget, gateway_api, kserve
from vidrec.rollout.routers.kserve import MODEL_CONTAINER, canary_name

STABLE_URI, CANDIDATE_URI = "s3://models/ranker/3", "s3://models/ranker/4"
STEPS = (5, 25, 50, 100)  # candidate percentages, as a canary strategy sets them
# Writes per rollout, either way: one reconcile (the second finds nothing to do), then four
# weights (5, 25, 50, 100 or 5, 25, 50 and back to 0), then finalize.
WRITES = 1 + 4 + 1

# Shaped like the chart's InferenceService (charts/vidrec/templates/triton.yaml), with a URI.
PREDICTOR: dict[str, Any] = {
    "minReplicas": 1,
    "maxReplicas": 3,
    "labels": {"app.kubernetes.io/component": "triton"},
    "automountServiceAccountToken": False,
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
    "initContainers": [
        {
            "name": "model-init",
            "image": "ghcr.io/vidrec/triton:1.0",
            "command": ["python", "-m", "vidrec.ranking.model_init"],
            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
        }
    ],
    "volumes": [{"name": "models", "emptyDir": {}}],
    "model": {
        "modelFormat": {"name": "triton", "version": "2"},
        "runtime": "vidrec-triton",
        "protocolVersion": "grpc-v2",
        "storageUri": STABLE_URI,
        "resources": {
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"cpu": 4, "memory": "8Gi"},  # an int-or-string given as int
        },
    },
}


def isvc(mode: str, predictor: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "ranker",
            "namespace": "vidrec",
            "annotations": {"serving.kserve.io/deploymentMode": mode},
        },
        "spec": {"predictor": copy.deepcopy(PREDICTOR if predictor is None else predictor)},
    }


def isvc_store(obj: dict[str, Any]) -> SchemaCheckedObjects:
    return SchemaCheckedObjects(
        KSERVE_ISVC, kserve.GROUP, kserve.VERSION, kserve.PLURAL, copy.deepcopy(obj)
    )


HTTPROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "ranker", "namespace": "vidrec"},
    "spec": {
        "parentRefs": [{"name": "vidrec-gateway"}],
        "hostnames": ["ranker.vidrec.example"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                "backendRefs": [{"name": "ranker-stable", "port": 8000}],
            },
            {
                "matches": [{"headers": [{"name": "x-shadow", "value": "1"}]}],
                "backendRefs": [{"name": "ranker-stable", "port": 8000, "weight": 1}],
            },
            {"backendRefs": [{"name": "other", "port": 80}]},
        ],
    },
}


def route_store(obj: dict[str, Any] = HTTPROUTE) -> SchemaCheckedObjects:
    return SchemaCheckedObjects(
        GATEWAY_HTTPROUTE,
        gateway_api.GROUP,
        gateway_api.VERSION,
        gateway_api.PLURAL,
        copy.deepcopy(obj),
    )


def run_rollout(router: Any, promote: bool) -> None:
    """A rollout's router calls: reconcile (twice: the operator re-runs it every tick), the
    steps, then finalize at 100% after a promotion or after moving back to 0% (a rollback)."""
    router.reconcile()
    router.reconcile()
    for candidate in STEPS[:-1] if not promote else STEPS:
        router.set_weights(100 - candidate, candidate)
        assert router.get_weights() == (100 - candidate, candidate)
    if not promote:
        router.set_weights(100, 0)
    router.finalize()


def assert_every_state_valid(store: SchemaCheckedObjects, writes: int) -> None:
    """Each write was checked on admission; re-check them all here so this test says so, and
    count them so that no write path went unexercised."""
    assert len(store.states) == 1 + writes  # the seed, then one state per patch
    for state in store.states:
        assert errors(store.schema, state) == []


# -- the vendored schemas themselves ----------------------------------------------------------


def test_the_vendored_schemas_are_the_versions_the_routers_write() -> None:
    isvc_schema = served_schema(KSERVE_ISVC, kserve.GROUP, kserve.VERSION, kserve.PLURAL)
    spec = isvc_schema["properties"]["spec"]["properties"]
    # KServe v0.20 has spec.canary (RawDeployment/Standard canaries); entries need both fields.
    assert spec["canary"]["items"]["required"] == ["predictor", "trafficPercent"]
    assert "canaryTrafficPercent" in spec["predictor"]["properties"]
    route = served_schema(
        GATEWAY_HTTPROUTE, gateway_api.GROUP, gateway_api.VERSION, gateway_api.PLURAL
    )
    refs = route["properties"]["spec"]["properties"]["rules"]["items"]["properties"]["backendRefs"]
    assert refs["items"]["properties"]["weight"]["maximum"] == 1_000_000
    with pytest.raises(ValueError, match="no version v2"):
        served_schema(KSERVE_ISVC, kserve.GROUP, "v2", kserve.PLURAL)
    with pytest.raises(ValueError, match="defines inferenceservices"):
        served_schema(KSERVE_ISVC, gateway_api.GROUP, "v1", gateway_api.PLURAL)


# -- KServe ------------------------------------------------------------------------------------


@pytest.mark.parametrize("candidate", [CANDIDATE_URI, "s3://models/ranker-v4", "4"])
@pytest.mark.parametrize("promote", [True, False], ids=["promote", "rollback"])
def test_kserve_standard_mode_writes_only_valid_objects(candidate: str, promote: bool) -> None:
    target = RouteTarget(model="ranker", stable=STABLE_URI, candidate=candidate)
    store = isvc_store(isvc("Standard"))
    router = KServeRouter(target, api=store)
    run_rollout(router, promote)
    assert_every_state_valid(store, WRITES)
    spec = store.obj["spec"]
    assert spec["canary"] == []
    if promote:
        assert spec["predictor"]["name"] == router.canary
        assert spec["predictor"]["model"]["storageUri"] == candidate
    else:
        assert spec["predictor"] == store.states[0]["spec"]["predictor"]


@pytest.mark.parametrize("promote", [True, False], ids=["promote", "rollback"])
def test_kserve_knative_mode_writes_only_valid_objects(promote: bool) -> None:
    target = RouteTarget(model="ranker", stable=STABLE_URI, candidate=CANDIDATE_URI)
    store = isvc_store(isvc("Serverless"))
    router = KServeRouter(target, api=store)
    run_rollout(router, promote)
    assert_every_state_valid(store, WRITES)
    predictor = store.obj["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"]["storageUri"] == (CANDIDATE_URI if promote else STABLE_URI)
    assert "canary" not in store.obj["spec"]


def test_kserve_standard_mode_beside_someone_elses_canary_and_a_named_predictor() -> None:
    """The mode from params, a stable predictor that already has a name and model.name, and
    another tool's canary entry: all kept valid, ours added and removed beside it."""
    predictor = {**copy.deepcopy(PREDICTOR), "name": "v3"}
    predictor["model"]["name"] = "triton"
    obj = isvc("Standard", predictor)
    del obj["metadata"]["annotations"]
    shadow = copy.deepcopy(predictor)
    del shadow["maxReplicas"]
    shadow.update(name="shadow")
    obj["spec"]["canary"] = [{"predictor": shadow, "trafficPercent": 0}]
    store = isvc_store(obj)
    router = KServeRouter(
        RouteTarget(model="ranker", stable="3", candidate="4", mode="standard"), api=store
    )
    run_rollout(router, promote=False)
    assert [e["predictor"]["name"] for e in store.states[1]["spec"]["canary"]] == ["shadow", "v4"]
    assert store.states[1]["spec"]["canary"][1]["predictor"]["model"]["name"] == "triton"
    assert store.obj["spec"]["canary"] == [{"predictor": shadow, "trafficPercent": 0}]


# The fixes the real schema (and webhook) asked for, each shown to matter.

CANARY_PATTERN = served_schema(KSERVE_ISVC, kserve.GROUP, kserve.VERSION, kserve.PLURAL)[
    "properties"
]["spec"]["properties"]["canary"]["items"]["properties"]["predictor"]["properties"]["name"][
    "pattern"
]


@pytest.mark.parametrize(
    "candidate",
    ["s3://models/ranker/4", "gs://b/4-final/", "s3://b/__/", "s3://m/Ranker_V4", "pvc://x/007"],
)
def test_canary_name_fits_kserve_pattern_even_for_a_digit_led_uri(candidate: str) -> None:
    """Bug found by the schema: ``.../ranker/4`` gave ``4-<sha>``, which the CRD's name
    pattern rejects (it must start with a letter); every canary write would have failed."""
    name = canary_name(candidate)
    assert re.fullmatch(CANARY_PATTERN, name), name
    assert name == canary_name(candidate)  # stable across ticks


def test_canary_names_that_already_fit_are_unchanged() -> None:
    """A rollout in flight before the fix keeps finding its entry by name."""
    assert canary_name("12") == "v12"
    assert re.fullmatch(r"ranker-v4-[0-9a-f]{8}", canary_name("s3://models/ranker-v4"))


def test_a_canary_model_without_a_container_name_is_rejected_so_the_router_sets_one() -> None:
    """Bug found by the schema: KServe's make manifests deletes ``required`` from
    ``spec.<component>.<field>`` but not inside ``spec.canary[]``, so there ``model.name``
    (the inlined Container's name) and ``modelFormat`` stay required. The router copied the
    stable predictor, whose model has no name: the write would be refused."""
    store = isvc_store(isvc("Standard"))
    target = RouteTarget(model="ranker", stable=STABLE_URI, candidate=CANDIDATE_URI)
    router = KServeRouter(target, api=store)
    predictor = router._canary(PREDICTOR)
    assert predictor["model"]["name"] == MODEL_CONTAINER
    del predictor["model"]["name"]
    entry = {"predictor": predictor, "trafficPercent": 0}
    with pytest.raises(Invalid, match=r"canary/0/predictor/model: 'name' is a required property"):
        store.patch_namespaced_custom_object(
            kserve.GROUP,
            kserve.VERSION,
            "vidrec",
            kserve.PLURAL,
            "ranker",
            {"spec": {"canary": [entry]}},
        )
    router.reconcile()
    (ours,) = store.obj["spec"]["canary"]
    assert ours["predictor"]["model"]["name"] == MODEL_CONTAINER


def test_the_canary_drops_the_autoscaling_kserves_webhook_forbids() -> None:
    """KServe's validating webhook (validateCanarySpecs) refuses a canary with maxReplicas,
    scaleTarget, scaleMetric or autoScaling (canaries run fixed replicas); the chart's predictor
    sets maxReplicas. Not a schema rule, so asserted directly."""
    predictor = {**copy.deepcopy(PREDICTOR), "scaleTarget": 70, "scaleMetric": "concurrency"}
    store = isvc_store(isvc("Standard", predictor))
    router = KServeRouter(
        RouteTarget(model="ranker", stable=STABLE_URI, candidate=CANDIDATE_URI), api=store
    )
    router.reconcile()
    canary = store.obj["spec"]["canary"][0]["predictor"]
    assert not {"maxReplicas", "scaleTarget", "scaleMetric", "autoScaling"} & canary.keys()
    assert canary["minReplicas"] == 1  # fixed replicas: the stable's minimum, never above it
    assert store.obj["spec"]["predictor"]["maxReplicas"] == 3  # the stable keeps its own


@pytest.mark.parametrize(
    ("predictor", "field"),
    [
        ({"containers": [{"name": "kserve-container", "image": "x"}]}, "modelFormat"),
        ({"model": {"storageUri": STABLE_URI}}, "modelFormat"),
        ({**PREDICTOR, "workerSpec": {"pipelineParallelSize": 2}}, "workerSpec"),
    ],
)
def test_a_predictor_kserve_cannot_canary_is_named_before_any_write(
    predictor: dict[str, Any], field: str
) -> None:
    store = isvc_store(isvc("Standard", predictor))
    router = KServeRouter(
        RouteTarget(model="ranker", stable=STABLE_URI, candidate=CANDIDATE_URI), api=store
    )
    with pytest.raises(ValueError, match=rf"spec\.predictor\..*{field}"):
        router.reconcile()
    assert len(store.states) == 1  # nothing written


# -- Gateway API -------------------------------------------------------------------------------


@pytest.mark.parametrize("promote", [True, False], ids=["promote", "rollback"])
def test_gateway_api_writes_only_valid_objects(promote: bool) -> None:
    store = route_store()
    router = GatewayAPIRouter(RouteTarget(model="ranker", stable="3", candidate="4"), api=store)
    run_rollout(router, promote)
    assert_every_state_valid(store, WRITES)
    for rule in store.obj["spec"]["rules"][:2]:
        weights = {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
        assert weights == (
            {"ranker-stable": 0, "ranker-canary": 100}
            if promote
            else {"ranker-stable": 100, "ranker-canary": 0}
        )
        # The API server's defaults were applied and carried to the candidate's ref.
        assert {(r["group"], r["kind"], r["port"]) for r in rule["backendRefs"]} == {
            ("", "Service", 8000)
        }
    assert store.obj["spec"]["rules"][2] == store.states[0]["spec"]["rules"][2]


# -- the check is not vacuous ------------------------------------------------------------------


def test_a_string_weight_is_rejected_and_the_object_kept() -> None:
    store = route_store()
    rules = copy.deepcopy(store.obj["spec"]["rules"])
    rules[0]["backendRefs"][0]["weight"] = "50"
    before = copy.deepcopy(store.obj)
    with pytest.raises(Invalid, match=r"rules/0/backendRefs/0/weight: '50' is not of type"):
        store.patch_namespaced_custom_object(
            gateway_api.GROUP,
            gateway_api.VERSION,
            "vidrec",
            gateway_api.PLURAL,
            "ranker",
            {"spec": {"rules": rules}},
        )
    assert store.obj == before and len(store.states) == 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weigth": 5}]}]}},
            r"Additional properties are not allowed \('weigth' was unexpected\)",
        ),
        (
            {
                "spec": {
                    "rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 2_000_000}]}]
                }
            },
            r"weight: 2000000 is greater than the maximum of 1000000",
        ),
        (
            {"spec": {"rules": [{"backendRefs": [{"name": "a", "port": 70000}]}]}},
            r"port: 70000 is greater than the maximum of 65535",
        ),
        ({"spec": {"rules": []}}, r"spec/rules: \[\] should be non-empty"),
    ],
)
def test_gateway_api_schema_catches_wrong_routes(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        route_store().patch_namespaced_custom_object(
            gateway_api.GROUP, gateway_api.VERSION, "vidrec", gateway_api.PLURAL, "ranker", patch
        )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"trafficPercent": "50"}, r"trafficPercent: '50' is not of type 'integer'"),
        ({"trafficPercent": 101}, r"trafficPercent: 101 is greater than the maximum of 100"),
        ({}, r"canary/0: 'trafficPercent' is a required property"),
        ({"trafficPercent": 5, "weight": 5}, r"\('weight' was unexpected\)"),
        ({"trafficPercent": 5, "name": "V4"}, r"predictor/name: 'V4' does not match"),
    ],
)
def test_kserve_schema_catches_wrong_canaries(entry: dict[str, Any], message: str) -> None:
    store = isvc_store(isvc("Standard"))
    predictor = {**copy.deepcopy(PREDICTOR), "name": entry.pop("name", "v4")}
    del predictor["maxReplicas"]
    predictor["model"]["name"] = MODEL_CONTAINER
    with pytest.raises(Invalid, match=message):
        store.patch_namespaced_custom_object(
            kserve.GROUP,
            kserve.VERSION,
            "vidrec",
            kserve.PLURAL,
            "ranker",
            {"spec": {"canary": [{"predictor": predictor, **entry}]}},
        )


def test_kserve_schema_catches_a_knative_percent_given_as_a_string() -> None:
    with pytest.raises(Invalid, match=r"canaryTrafficPercent: '30' is not of type 'integer'"):
        isvc_store(isvc("Serverless")).patch_namespaced_custom_object(
            kserve.GROUP,
            kserve.VERSION,
            "vidrec",
            kserve.PLURAL,
            "ranker",
            {"spec": {"predictor": {"canaryTrafficPercent": "30"}}},
        )


# -- the structural-schema adapter -------------------------------------------------------------


STRUCTURAL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object"},
        "quantity": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        },
        "port": {"x-kubernetes-int-or-string": True},  # no anyOf: the adapter adds it
        "replicas": {"type": "integer", "format": "int32"},
        "note": {"type": "string", "nullable": True},
        "status": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"phase": {"type": "string"}},
        },
        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@pytest.mark.parametrize(
    ("doc", "found"),
    [
        ({"metadata": {"name": "x", "labels": {"a": "b"}}, "quantity": 2, "port": "http"}, []),
        ({"quantity": "500m", "port": 8080, "note": None, "labels": {"k": "v"}}, []),
        ({"status": {"phase": "Ready", "anything": {"goes": 1}}}, []),
        ({"quantity": 1.5}, ["quantity: 1.5 is not valid under any of the given schemas"]),
        ({"port": True}, ["port: True is not valid under any of the given schemas"]),
        ({"replicas": 2**31}, ["replicas: 2147483648 is greater than the maximum of 2147483647"]),
        ({"status": {"phase": 3}}, ["status/phase: 3 is not of type 'string'"]),
        ({"extra": 1}, ["<root>: Additional properties are not allowed ('extra' was unexpected)"]),
        ({"tags": ["a", "a"]}, ["tags: ['a', 'a'] has non-unique elements"]),
        (
            {"ports": [{"name": "h"}, {"name": "h"}]},
            ["ports: duplicate entry for map keys ['name']: ['h']"],
        ),
        ({"labels": {"k": 1}}, ["labels/k: 1 is not of type 'string'"]),
    ],
)
def test_the_adapter_maps_structural_extensions(doc: dict[str, Any], found: list[str]) -> None:
    assert errors(to_json_schema(STRUCTURAL), doc) == found
