"""Custom resources against their CRD schemas: the ModelRollout examples against the chart's
CRD, the rendered InferenceService / ServingRuntime against KServe's (vendored, trimmed
verbatim; see schemas/*.yaml) plus the Kubernetes core types KServe inlines."""

from __future__ import annotations

import copy
import importlib.resources
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import yaml

from tests.chart.render import CHART, find, rendered

SCHEMAS = Path(__file__).parent / "schemas"
K8S_VERSION = "v1.35.0-local-strict"


def strict(schema: Any) -> Any:
    """kubectl --validate=strict semantics: unknown fields are errors, not pruned."""
    s = copy.deepcopy(schema)
    if isinstance(s, dict):
        if "properties" in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s.setdefault("additionalProperties", False)
        return {k: strict(v) for k, v in s.items()}
    if isinstance(s, list):
        return [strict(v) for v in s]
    return s


def errors(schema: dict[str, Any], doc: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    )


@cache
def _k8s_definitions() -> dict[str, Any]:
    base = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / K8S_VERSION
    return dict(json.loads((base / "_definitions.json").read_text()))


def core_errors(kind: str, doc: Any, *, drop_required: tuple[str, ...] = ()) -> list[str]:
    """Errors of ``doc`` as io.k8s.api.core.v1.<kind> (kubernetes-validate's strict schemas)."""
    defs = copy.deepcopy(_k8s_definitions())
    target = defs["$defs"][f"io.k8s.api.core.v1.{kind}"]
    target["required"] = [r for r in target.get("required", []) if r not in drop_required]
    registry = referencing.Registry().with_resource(
        defs["$id"], referencing.Resource.from_contents(defs)
    )
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{defs['$id']}#/$defs/io.k8s.api.core.v1.{kind}"}, registry=registry
    )
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    )


def _crd_schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


# -- ModelRollout ---------------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted((CHART / "examples").glob("modelrollout-*.yaml")))
def test_modelrollout_examples_validate_against_the_crd(example: Path) -> None:
    schema = strict(_crd_schema(CHART / "crds" / "modelrollout.yaml"))
    assert errors(schema, yaml.safe_load(example.read_text())) == []


def test_modelrollout_schema_rejects_a_bad_rollout() -> None:
    schema = strict(_crd_schema(CHART / "crds" / "modelrollout.yaml"))
    doc = yaml.safe_load((CHART / "examples" / "modelrollout-canary.yaml").read_text())
    doc["spec"]["trafficRoutr"] = {"type": "nop"}
    assert any("trafficRoutr" in e for e in errors(schema, doc))


# -- KServe ---------------------------------------------------------------------------------

ISVC_OWN = ("labels", "logger", "maxReplicas", "minReplicas", "model")
MODEL_OWN = ("modelFormat", "protocolVersion", "runtime", "runtimeVersion", "storage", "storageUri")


def isvc_errors(isvc: dict[str, Any]) -> list[str]:
    schema = yaml.safe_load((SCHEMAS / "kserve-inferenceservice-v1beta1.yaml").read_text())
    own = copy.deepcopy(isvc)
    predictor = own["spec"]["predictor"]
    pod = {k: predictor.pop(k) for k in list(predictor) if k not in ISVC_OWN}
    model = predictor["model"]
    container = {k: model.pop(k) for k in list(model) if k not in MODEL_OWN}
    found = errors(strict(schema["openAPIV3Schema"]), own)
    # KServe inlines corev1.PodSpec into the predictor and corev1.Container into the model.
    found += [
        f"predictor(PodSpec) {e}"
        for e in core_errors("PodSpec", pod, drop_required=("containers",))
    ]
    found += [
        f"model(Container) {e}"
        for e in core_errors("Container", container, drop_required=("name",))
    ]
    return found


def runtime_errors(runtime: dict[str, Any]) -> list[str]:
    schema = yaml.safe_load((SCHEMAS / "kserve-servingruntime-v1alpha1.yaml").read_text())
    own = copy.deepcopy(runtime)
    containers = own["spec"].pop("containers")
    found = errors(strict(schema["openAPIV3Schema"]), own)
    for c in containers:
        found += [f"containers/{c['name']} {e}" for e in core_errors("Container", c)]
    return found


@pytest.mark.parametrize("profile", ["default", "gpu"])
def test_inference_service_validates_against_kserve_schema(profile: str) -> None:
    isvc = find(rendered(profile), "InferenceService", "vidrec-triton")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc_errors(isvc) == []
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "vidrec-triton"
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    assert mode == "RawDeployment"


@pytest.mark.parametrize("profile", ["default", "gpu"])
def test_serving_runtime_validates_against_kserve_schema(profile: str) -> None:
    runtime = find(rendered(profile), "ServingRuntime", "vidrec-triton")
    assert runtime_errors(runtime) == []
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "triton"


def test_kserve_validation_catches_mistakes() -> None:
    isvc = find(rendered("gpu"), "InferenceService", "vidrec-triton")
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["minReplica"] = 1  # typo'd KServe field
    bad["spec"]["predictor"]["initContainers"][0]["imagePullPolicy"] = 3  # wrong core type
    bad["spec"]["predictor"]["model"]["modelFormat"] = {"version": "2"}  # name is required
    found = "\n".join(isvc_errors(bad))
    assert "minReplica" in found and "imagePullPolicy" in found and "'name' is a required" in found
    runtime = copy.deepcopy(find(rendered("gpu"), "ServingRuntime", "vidrec-triton"))
    runtime["spec"]["supportedModelFormats"][0]["priority"] = 0
    runtime["spec"]["containers"][0]["args"] = "--model-repository=/models"
    found = "\n".join(runtime_errors(runtime))
    assert "priority" in found and "args" in found
