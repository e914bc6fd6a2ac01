"""Upstream CRD schemas (``tests/vendor/crds/``) as JSON Schema, and a store that writes like
an API server: merge patch, then defaults, then validation, then (only if valid) the write.

A CRD's ``openAPIV3Schema`` is OpenAPI v3 plus Kubernetes' structural-schema extensions, which
``jsonschema`` does not know. :func:`to_json_schema` maps them:

* **unknown fields**: an object node without ``x-kubernetes-preserve-unknown-fields: true``
  gets ``additionalProperties: false`` (a map keeps its ``additionalProperties`` schema). The
  API server prunes such fields (silently unless the client asked for strict field
  validation), so a field the schema lacks is a write that would be lost: an error here.
  The root ``metadata`` is left open: the API server checks ObjectMeta itself, not the CRD.
* ``x-kubernetes-int-or-string: true`` -> integer or string (``anyOf``, added where missing).
* ``format: int32`` / ``int64`` -> the integer's bounds (``jsonschema`` ignores the format).
* ``nullable: true`` -> ``null`` allowed as well.
* ``x-kubernetes-list-type: set`` -> ``uniqueItems``; ``map`` -> the items' values at
  ``x-kubernetes-list-map-keys`` are unique (a keyword this module's validator adds).

Not checked: ``x-kubernetes-validations`` (CEL rules; there is no CEL evaluator here), string
formats, and anything an admission webhook adds or rejects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

VENDOR = Path(__file__).parent / "vendor" / "crds"
KSERVE_ISVC = VENDOR / "kserve" / "serving.kserve.io_inferenceservices.yaml"
GATEWAY_HTTPROUTE = VENDOR / "gateway-api" / "gateway.networking.k8s.io_httproutes.yaml"

INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@cache
def load_crd(path: Path) -> dict[str, Any]:
    """The CRD document (libyaml when present: the KServe one is ~2 MB)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd: dict[str, Any] = yaml.load(path.read_text(), Loader=loader)
    return crd


def served_schema(path: Path, group: str, version: str, plural: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``version``, refusing a CRD for another resource or a version
    it does not serve (what the router names must be what the cluster has)."""
    crd = load_crd(path)
    names = crd["spec"]["names"]
    if (crd["spec"]["group"], names["plural"]) != (group, plural):
        raise ValueError(f"{path.name} defines {names['plural']}.{crd['spec']['group']}")
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            if not entry.get("served"):
                raise ValueError(f"{path.name}: {version} is not served")
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise ValueError(f"{path.name}: no version {version}")


def to_json_schema(node: Any, *, root: bool = True) -> Any:
    """The structural schema ``node`` as JSON Schema (see the module docstring)."""
    if isinstance(node, list):
        return [to_json_schema(v, root=False) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, root=False) for k, v in node.items() if k != "properties"}
    if "properties" in node:
        out["properties"] = {
            name: (
                {"type": "object"}  # ObjectMeta: validated by the API server, not the CRD
                if root and name == "metadata"
                else to_json_schema(sub, root=False)
            )
            for name, sub in node["properties"].items()
        }
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("type") == "integer" and node.get("format") in INT_BOUNDS:
        low, high = INT_BOUNDS[node["format"]]
        out["minimum"] = max(node.get("minimum", low), low)
        out["maximum"] = min(node.get("maximum", high), high)
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _unique_map_keys(
    validator: Any, keys: list[str], instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """``x-kubernetes-list-type: map``: no two items share their values at ``keys``."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(instance, list):
        return
    seen: set[str] = set()
    for item in instance:
        if isinstance(item, dict):
            key = repr([item.get(k) for k in keys])
            if key in seen:
                yield jsonschema.ValidationError(f"duplicate entry for map keys {keys}: {key}")
            seen.add(key)


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-kubernetes-list-map-keys": _unique_map_keys}
)


def apply_defaults(schema: Any, doc: Any) -> Any:
    """``doc`` with the schema's ``default``s filled in where a field is absent, as the API
    server does when it decodes an object (into objects that exist; never creates a parent)."""
    if not isinstance(schema, dict):
        return doc
    if isinstance(doc, dict):
        out = dict(doc)
        props: dict[str, Any] = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in out and isinstance(sub, dict) and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in out.keys() - props.keys():
                out[name] = apply_defaults(extra, out[name])
        return out
    if isinstance(doc, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in doc]
    return doc


def errors(schema: dict[str, Any], doc: Any) -> list[str]:
    """Every error of ``doc`` against ``schema`` (already JSON Schema), as ``path: message``."""
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in Validator(schema).iter_errors(doc)
    )


class Invalid(Exception):
    """What the API server's 422 would say: the merged object fails the CRD schema."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the API server applies to custom objects)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class SchemaCheckedObjects:
    """One custom object, behind the two ``CustomObjectsApi`` calls the routers make.

    Every PATCH is merged, defaulted and validated against the vendored CRD's served version
    before it is kept; an invalid result raises :class:`Invalid` and changes nothing, as a
    rejected write would. ``states`` holds every object state accepted, seed included."""

    crd: Path
    group: str
    version: str
    plural: str
    obj: dict[str, Any]
    states: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw = served_schema(self.crd, self.group, self.version, self.plural)
        self.schema = to_json_schema(self.raw)
        self.obj = self._admit(self.obj)

    def _admit(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = apply_defaults(self.raw, obj)
        if found := errors(self.schema, obj):
            raise Invalid("\n".join(found))
        self.states.append(copy.deepcopy(obj))
        return obj

    def _check(self, group: str, version: str, plural: str, name: str) -> None:
        if (group, version, plural) != (self.group, self.version, self.plural):
            raise ValueError(f"{group}/{version}/{plural}: not this store's resource")
        if name != self.obj["metadata"]["name"]:
            raise LookupError(f"{plural} {name!r} not found")

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        self._check(group, version, plural, name)
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> dict[str, Any]:
        self._check(group, version, plural, name)
        self.obj = self._admit(merge_patch(self.obj, body))
        return copy.deepcopy(self.obj)
