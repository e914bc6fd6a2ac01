"""A trivial operator that proves the harness: what a handler returns lands in status."""

from typing import Any

import kopf


@kopf.on.create("vidrec.io", "v1alpha1", "modelrollouts")
def echo(spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="Echo", message=f"saw {spec.get('model')}")
    return {"model": spec.get("model")}


@kopf.on.field("vidrec.io", "v1alpha1", "modelrollouts", field="spec.paused")
def paused(new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["paused"] = bool(new)
