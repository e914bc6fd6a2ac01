"""The operator's per-object deps: rebuilt when what they are built from changes (router,
providers, model, versions), kept otherwise; router/analysis combinations that cannot feed
the analysis are rejected; RouteTarget carries the Triton model versions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vidrec.rollout.operator import Deps, OperatorSettings, build_deps, cached_deps, deps_key
from vidrec.rollout.providers import PrometheusProvider, WebhookProvider
from vidrec.rollout.routers import NopRouter
from vidrec.rollout.spec import RolloutSpec, SpecError

SETTINGS = OperatorSettings(prometheus_url="http://127.0.0.1:9")  # never queried here
HOOK = {"name": "sla", "provider": "webhook", "webhook": {"url": "http://hook.test/run"}}
PROM = {"name": "latency", "template": "latency-p99-ratio"}


def raw(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "ranker",
        "stableVersion": "3",
        "candidateVersion": "4",
        "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        "analysis": {"metrics": [copy.deepcopy(HOOK)]},
        "trafficRouter": {"type": "nop", "params": {"name": "a"}},
    }
    spec.update(over)
    return spec


class Builds:
    """build_deps, counting its calls (the real one: a nop router, real providers)."""

    def __init__(self) -> None:
        self.specs: list[RolloutSpec] = []

    def __call__(self, spec: RolloutSpec, namespace: str, settings: OperatorSettings) -> Deps:
        self.specs.append(spec)
        return build_deps(spec, namespace, settings)


def test_deps_are_kept_while_their_inputs_are_unchanged_and_rebuilt_when_they_change() -> None:
    memo: dict[str, Any] = {}
    build = Builds()

    def deps(**over: Any) -> Deps:
        return cached_deps(memo, RolloutSpec.from_dict(raw(**over)), "default", SETTINGS, build)

    first = deps()
    assert deps() is first and deps(paused=True) is first  # status-only edits keep them
    assert deps(strategy={"canary": {"steps": [{"setWeight": 50}]}}) is first
    assert len(build.specs) == 1

    moved = deps(trafficRouter={"type": "nop", "params": {"name": "b"}})
    assert moved is not first and len(build.specs) == 2
    assert isinstance(moved.router, NopRouter) and moved.router.target.name == "b"
    old_hook = next(p for k, p in first.providers.items() if k != "prometheus")
    assert isinstance(old_hook, WebhookProvider) and old_hook._client.is_closed  # released

    other_hook = {**HOOK, "webhook": {"url": "http://hook.test/other"}}
    rebuilt = deps(
        trafficRouter={"type": "nop", "params": {"name": "b"}},
        analysis={"metrics": [other_hook]},
    )
    assert rebuilt is not moved
    assert any(
        isinstance(p, WebhookProvider) and p.address.endswith("/other")
        for p in rebuilt.providers.values()
    )
    bumped = deps(
        trafficRouter={"type": "nop", "params": {"name": "b"}},
        analysis={"metrics": [other_hook]},
        candidateVersion="5",
    )
    assert bumped is not rebuilt and bumped.router.target.candidate == "5"  # type: ignore[attr-defined]
    assert len(build.specs) == 4


def test_the_key_covers_router_providers_model_versions_and_namespace() -> None:
    base = RolloutSpec.from_dict(raw())
    same = RolloutSpec.from_dict(raw(sticky=False, paused=True))
    assert deps_key(base, "default") == deps_key(same, "default")
    changed = [
        RolloutSpec.from_dict(raw(trafficRouter={"type": "nop", "params": {"name": "a", "x": 1}})),
        RolloutSpec.from_dict(
            raw(
                analysis={
                    "metrics": [
                        {
                            **HOOK,
                            "webhook": {"url": "http://hook.test/run", "payload": {"users": 5}},
                        }
                    ]
                }
            )
        ),
        RolloutSpec.from_dict(raw(model="ranker2")),
        RolloutSpec.from_dict(raw(stableVersion="2")),
    ]
    keys = {deps_key(s, "default") for s in changed} | {deps_key(base, "other")}
    assert deps_key(base, "default") not in keys and len(keys) == 5


# --- router / analysis combinations -----------------------------------------------------------


def test_nop_rejects_metrics_that_need_candidate_traffic() -> None:
    with pytest.raises(SpecError) as err:
        RolloutSpec.from_dict(raw(analysis={"metrics": [HOOK, PROM]}))
    assert err.value.field_path == "spec.trafficRouter.type"
    assert "moves no traffic" in err.value.message and "latency" in err.value.message
    RolloutSpec.from_dict(raw())  # webhook checks only: fine
    RolloutSpec.from_dict(raw(analysis={}))  # no analysis: fine
    RolloutSpec.from_dict(
        raw(analysis={"metrics": [PROM]}, trafficRouter={"type": "gateway-table"})
    )


URIS = {"stableVersion": "gs://m/ranker/a", "candidateVersion": "gs://m/ranker/b"}


@pytest.mark.parametrize("router", ["kserve", "gateway-api"])
def test_upstream_routers_with_storage_uris_need_the_triton_versions(router: str) -> None:
    with pytest.raises(SpecError) as err:
        RolloutSpec.from_dict(
            raw(**URIS, analysis={"metrics": [PROM]}, trafficRouter={"type": router})
        )
    assert err.value.field_path == "spec.trafficRouter.params.stableModelVersion"
    assert "Triton model version" in err.value.message and "gs://m/ranker/a" in err.value.message
    half = {"type": router, "params": {"stableModelVersion": 3}}
    with pytest.raises(SpecError, match=r"params\.candidateModelVersion: required"):
        RolloutSpec.from_dict(raw(**URIS, analysis={"metrics": [PROM]}, trafficRouter=half))
    same = {"type": router, "params": {"stableModelVersion": 3, "candidateModelVersion": 3}}
    with pytest.raises(SpecError, match=r"candidateModelVersion: must differ"):
        RolloutSpec.from_dict(raw(**URIS, analysis={"metrics": [PROM]}, trafficRouter=same))
    ok = {"type": router, "params": {"stableModelVersion": 3, "candidateModelVersion": 4}}
    spec = RolloutSpec.from_dict(raw(**URIS, analysis={"metrics": [PROM]}, trafficRouter=ok))
    assert (spec.model_version("stable"), spec.model_version("candidate")) == (3, 4)
    # version numbers, webhook-only checks or no analysis need no params
    RolloutSpec.from_dict(raw(analysis={"metrics": [PROM]}, trafficRouter={"type": router}))
    RolloutSpec.from_dict(raw(**URIS, trafficRouter={"type": router}))


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"stableModelVersion": 0}, "stableModelVersion", "integer >= 1"),
        ({"candidateModelVersion": "4"}, "candidateModelVersion", "integer >= 1"),
        ({"stableModelVersion": True}, "stableModelVersion", "integer >= 1"),
        ({"stableModelVersion": 7}, "stableModelVersion", "must equal stableVersion 3"),
    ],
)
def test_model_version_params_are_checked(params: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(SpecError) as err:
        RolloutSpec.from_dict(raw(trafficRouter={"type": "kserve", "params": params}))
    assert err.value.field_path == f"spec.trafficRouter.params.{field}"
    assert says in err.value.message


def test_build_deps_fills_the_route_targets_model_versions() -> None:
    digits = build_deps(RolloutSpec.from_dict(raw()), "ns", SETTINGS)
    uris = build_deps(
        RolloutSpec.from_dict(
            raw(
                **URIS,
                trafficRouter={
                    "type": "nop",
                    "params": {
                        "stableModelVersion": 7,
                        "candidateModelVersion": 8,
                        "labelsConfigMap": "ranker-labels",
                    },
                },
            )
        ),
        "ns",
        SETTINGS,
    )
    unknown = build_deps(RolloutSpec.from_dict(raw(**URIS)), "ns", SETTINGS)
    found = [
        (d.router.target.stable_model_version, d.router.target.candidate_model_version)  # type: ignore[attr-defined]
        for d in (digits, uris, unknown)
    ]
    assert found == [(3, 4), (7, 8), (0, 0)]
    assert uris.router.target.labels_configmap == "ranker-labels"  # type: ignore[attr-defined]
    assert isinstance(digits.providers["prometheus"], PrometheusProvider)
