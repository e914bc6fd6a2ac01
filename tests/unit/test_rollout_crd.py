"""The ModelRollout CRD: its schema accepts the samples and rejects each kind of bad spec.

No API server here, so the CRD's ``openAPIV3Schema`` is checked with ``jsonschema`` (the
``x-kubernetes-*`` keys stripped; the ``oneOf`` twins of the CEL rules enforce "exactly one").
The samples also go through the operator's own parser, so the two cannot drift apart.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from vidrec.rollout.providers import PROVIDERS
from vidrec.rollout.routers import ROUTERS
from vidrec.rollout.spec import RolloutSpec, RolloutStatus

CHART = Path(__file__).resolve().parents[2] / "charts" / "vidrec"
CRD = yaml.safe_load((CHART / "crds" / "modelrollout.yaml").read_text())
SAMPLES = sorted((CHART / "examples").glob("modelrollout-*.yaml"))


def _strip_k8s(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_k8s(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [_strip_k8s(v) for v in node]
    return node


VERSION = CRD["spec"]["versions"][0]
VALIDATOR = jsonschema.Draft7Validator(_strip_k8s(VERSION["schema"]["openAPIV3Schema"]))
SPEC_SCHEMA = VERSION["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


def sample(name: str = "modelrollout-canary.yaml") -> dict[str, Any]:
    return yaml.safe_load((CHART / "examples" / name).read_text())


def test_crd_identity_and_printer_columns() -> None:
    assert CRD["spec"]["group"] == "vidrec.io"
    assert CRD["metadata"]["name"] == "modelrollouts.vidrec.io"
    names = CRD["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "ModelRollout",
        "modelrollouts",
        ["mro"],
    )
    assert VERSION["name"] == "v1alpha1" and VERSION["subresources"] == {"status": {}}
    columns = [c["name"] for c in VERSION["additionalPrinterColumns"]]
    assert columns == ["Phase", "Step", "Weight", "Age", "Message"]


def test_enums_match_the_registries() -> None:
    """Adding a router or provider means a registry line AND a CRD enum value."""
    router_enum = SPEC_SCHEMA["trafficRouter"]["properties"]["type"]["enum"]
    metric = SPEC_SCHEMA["analysis"]["properties"]["metrics"]["items"]["properties"]
    assert sorted(router_enum) == sorted(ROUTERS)
    assert sorted(metric["provider"]["enum"]) == sorted(PROVIDERS)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_are_valid_for_schema_and_parser(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "vidrec.io/v1alpha1" and doc["kind"] == "ModelRollout"
    VALIDATOR.validate(doc)
    RolloutSpec.from_dict(doc["spec"])


def test_operator_status_is_valid() -> None:
    doc = sample()
    doc["status"] = RolloutStatus().to_dict()
    VALIDATOR.validate(doc)


def _both_strategies(spec: dict[str, Any]) -> None:
    spec["strategy"]["blueGreen"] = {"previewWeight": 0}


def _no_strategy(spec: dict[str, Any]) -> None:
    spec["strategy"] = {}


def _set(path: str, value: Any) -> Any:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return edit


def _drop(key: str) -> Any:
    return lambda spec: spec.pop(key)


BAD = {
    "negative weight": _set("strategy.canary.steps.0", {"setWeight": -5}),
    "weight over 100": _set("strategy.canary.steps.0", {"setWeight": 101}),
    "both strategies": _both_strategies,
    "no strategy": _no_strategy,
    "unknown router": _set("trafficRouter.type", "istio"),
    "missing model": _drop("model"),
    "missing candidate": _drop("candidateVersion"),
    "bad duration": _set("analysis.interval", "5 minutes"),
    "bad pause duration": _set("strategy.canary.steps.1", {"pause": {"duration": "-1s"}}),
    "unknown provider": _set("analysis.metrics.0.provider", "datadog"),
    "template and query": _set("analysis.metrics.0.query", "up"),
    "step of two kinds": _set("strategy.canary.steps.0", {"setWeight": 5, "pause": {}}),
    "empty steps": _set("strategy.canary.steps", []),
    "bad version": _set("candidateVersion", "v4"),
    "zero failure limit": _set("analysis.failureLimit", 0),
    "webhook without url": _set("analysis.metrics.0", {"name": "h", "provider": "webhook",
                                                       "webhook": {"timeout": "5s"}}),
    "webhook url not http": _set("analysis.metrics.0", {"name": "h", "provider": "webhook",
                                                        "webhook": {"url": "ftp://h/"}}),
    "webhook with template": _set("analysis.metrics.0.webhook", {"url": "http://h/"}),
    "model version 0": _set("trafficRouter.params", {"stableModelVersion": 0}),
    "model version string": _set("trafficRouter.params", {"candidateModelVersion": "4"}),
}  # fmt: skip


@pytest.mark.parametrize("edit", BAD.values(), ids=list(BAD))
def test_bad_spec_is_rejected(edit: Any) -> None:
    doc = copy.deepcopy(sample())
    edit(doc["spec"])
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(doc)


def test_a_webhook_check_validates_for_schema_and_parser() -> None:
    doc = copy.deepcopy(sample())
    webhook = {"url": "http://h.test/run", "timeout": "2m", "payload": {"users": 5}}
    hook = {"name": "load", "provider": "webhook", "query": "{candidate}", "webhook": webhook}
    doc["spec"]["analysis"]["metrics"].append(hook)
    VALIDATOR.validate(doc)
    assert RolloutSpec.from_dict(doc["spec"]).analysis.metrics[-1].webhook is not None
