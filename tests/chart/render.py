"""Render charts/vidrec with the real ``helm`` binary, once per profile and session."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vidrec"
HELM = REPO / ".tools" / "bin" / "helm"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
KUBERNETES_VALIDATE = REPO / ".venv" / "bin" / "kubernetes-validate"
# The API groups of a cluster with KServe and the Prometheus operator, as `helm install` would
# see them through discovery (helm template has no cluster: they are passed explicitly).
API_VERSIONS = (
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "serving.kserve.io/v1beta1/InferenceService",
    "serving.kserve.io/v1alpha1/ServingRuntime",
)
PROFILES = {
    "default": (),
    "cpu": (CHART / "values-cpu.yaml",),
    "gpu": (CHART / "values-gpu.yaml",),
}
BUILTIN_GROUPS = ("", "apps", "batch", "policy", "autoscaling", "networking.k8s.io")
BUILTIN_GROUPS += ("rbac.authorization.k8s.io",)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=check, timeout=120
    )


def template_args(profile: str, *extra: str, api_versions: bool = True) -> list[str]:
    args = ["template", "vidrec", str(CHART), "--namespace", "vidrec"]
    for values in PROFILES[profile]:
        args += ["-f", str(values)]
    if api_versions:
        for api in API_VERSIONS:
            args += ["--api-versions", api]
    return [*args, *extra]


@functools.cache
def rendered(profile: str) -> tuple[dict[str, Any], ...]:
    """The profile's manifests (cached: one `helm template` per profile per session)."""
    out = helm(*template_args(profile)).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render_with(*sets: str, profile: str = "default") -> list[dict[str, Any]]:
    args: list[str] = []
    for s in sets:
        args += ["--set", s]
    out = helm(*template_args(profile, *args)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def group_of(doc: dict[str, Any]) -> str:
    api = str(doc["apiVersion"])
    return api.split("/")[0] if "/" in api else ""


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every workload; KServe predictors count as pod specs."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    spec = doc.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "Job"}:
        yield f"{kind}/{name}", spec["template"]["spec"]
    elif kind == "CronJob":
        yield f"{kind}/{name}", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "InferenceService":
        yield f"{kind}/{name}", spec["predictor"]
    elif kind == "ServingRuntime":
        yield f"{kind}/{name}", spec


def containers(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], bool]]:
    """(where, container, pod spec, is_init) of every container of a manifest."""
    for where, pod in pod_specs(doc):
        for c in pod.get("initContainers", []):
            yield f"{where}/init:{c['name']}", c, pod, True
        for c in pod.get("containers", []):
            yield f"{where}/{c['name']}", c, pod, False


def by_kind(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str) -> list[Any]:
    return [d for d in docs if d["kind"] == kind]


def find(docs: Any, kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return dict(d)
    raise KeyError(f"{kind}/{name} not rendered")
