"""The chart points the rollout operator at every Triton replica: the Triton Service by name
(VIDREC_ROLLOUT__TRITON_SERVICE, read by vidrec.rollout.triton_fleet) and read access to its
EndpointSlices -- and neither when the operator does not manage model versions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import PROFILES, by_kind, find, render_with, rendered
from vidrec.rollout.triton_fleet import PORT_NAME, parse_service

SLICES = {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]}


def _slice_rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in role["rules"] if r["resources"] == SLICES["resources"]]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_operator_reads_the_triton_services_endpoint_slices(profile: str) -> None:
    docs = rendered(profile)
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert "VIDREC_ROLLOUT__TRITON_URL" not in env  # one pod per request: not used any more
    namespace, name = parse_service(env["VIDREC_ROLLOUT__TRITON_SERVICE"])
    assert namespace == "vidrec"  # the release namespace, also under operator.scope=cluster
    service = find(docs, "Service", name)  # slices carry its name and port names
    assert PORT_NAME in {p["name"] for p in service["spec"]["ports"]}
    pod = find(docs, "Deployment", "vidrec-operator")["spec"]["template"]["spec"]
    env_from = [e["configMapRef"]["name"] for e in pod["containers"][0].get("envFrom", [])]
    assert "vidrec-env" in env_from
    rules = _slice_rules(find(docs, "Role", "vidrec-operator"))
    assert rules == [{**SLICES, "verbs": ["get", "list", "watch"]}]


def test_cluster_scope_grants_it_in_the_cluster_role() -> None:
    docs = render_with("operator.scope=cluster")
    assert _slice_rules(find(docs, "ClusterRole", "vidrec-vidrec-operator"))
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert env["VIDREC_ROLLOUT__TRITON_SERVICE"] == "vidrec/vidrec-triton"


def test_no_model_control_no_service_and_no_slice_access() -> None:
    docs = render_with("operator.tritonModelControl=false")
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert env.get("VIDREC_ROLLOUT__TRITON_SERVICE", "") == ""
    assert all(not _slice_rules(r) for r in by_kind(docs, "Role"))
