"""kopf handlers for ``ModelRollout`` (vidrec.io/v1alpha1). Thin: the logic is in vidrec.

Run: ``kopf run --all-namespaces operators/rollout/handlers.py``. Settings come from
``VIDREC_ROLLOUT__*`` (tick interval, Prometheus and Triton URLs) and ``VIDREC_REDIS__*``
(the gateway-table router). Every transition is written to status and posted as an Event;
``vidrec_rollout_*`` series are served on ``VIDREC_ROLLOUT__METRICS_PORT`` (0 = off).
"""

from __future__ import annotations

from typing import Any

import kopf
from prometheus_client import start_http_server

from vidrec.rollout import operator as op
from vidrec.rollout.operator_metrics import RolloutMetrics
from vidrec.rollout.spec import Phase, RolloutSpec, SpecError

RESOURCE = ("vidrec.io", "v1alpha1", "modelrollouts")
SETTINGS = op.OperatorSettings.from_env()
LIVE = {p.value for p in Phase if not p.terminal}
METRICS = RolloutMetrics()


@kopf.on.startup()
def serve_metrics(**_: Any) -> None:
    if SETTINGS.metrics_port:
        start_http_server(SETTINGS.metrics_port, registry=METRICS.registry)


def _live(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") in LIVE


def _unaccepted(status: kopf.Status, **_: Any) -> bool:
    return "phase" not in status


def _spec(body: kopf.Body, patch: kopf.Patch | None = None) -> RolloutSpec:
    """The parsed spec, or a permanent failure that says why where people look: a Warning
    Event (kopf posts no Events for its own log lines) and ``status.message``."""
    try:
        return RolloutSpec.from_dict(dict(body.spec))
    except SpecError as exc:
        message = f"Invalid spec: {exc}"
        if patch is not None and body.status.get("message") != message:
            kopf.warn(body, reason="InvalidSpec", message=str(exc))
            patch.status["message"] = message
        raise kopf.PermanentError(str(exc)) from exc


def _deps(memo: kopf.Memo, rollout: RolloutSpec, namespace: str) -> op.Deps:
    """The object's deps, rebuilt when its router, providers, model or versions change."""
    return op.cached_deps(memo, rollout, namespace, SETTINGS)


def _advance(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, command: str | None) -> None:
    """One engine step: status into ``patch.status``, one Event per transition."""
    rollout = _spec(body, patch)
    try:
        deps = _deps(memo, rollout, body.metadata.namespace or "default")
        result = op.tick(rollout, body.status, deps, command)
    except op.DependencyError as exc:
        raise kopf.TemporaryError(str(exc), delay=SETTINGS.tick_s) from exc
    patch.status.update(result.status)
    namespace, name = body.metadata.namespace or "default", body.metadata.name or ""
    METRICS.record(namespace, name, result.phase, result.weight, result.results)
    for event in result.events:
        post = kopf.warn if event.warning else kopf.info
        post(body, reason=event.reason, message=event.message)
        SETTINGS.notifier.post(event.reason, f"{namespace}/{name}: {event.message}")


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec", when=_unaccepted)  # a rejected spec, now edited
def validate_new(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    rollout = _spec(body, patch)
    patch.status["phase"] = Phase.PENDING.value
    patch.status["message"] = f"Accepted: {rollout.model} {rollout.stable_version} → "
    patch.status["message"] += f"{rollout.candidate_version}, waiting for the first tick"


@kopf.on.resume(*RESOURCE)
def validate_existing(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _spec(body, patch)


@kopf.timer(*RESOURCE, interval=SETTINGS.tick_s, when=_live)
def tick(body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    raw = meta.annotations.get(op.COMMAND_ANNOTATION)
    try:
        command = op.check_command(raw)
    except ValueError as exc:
        kopf.warn(body, reason="UnknownCommand", message=str(exc))
        command = None
    _advance(body, patch, memo, command)
    if raw is not None:
        patch.metadata.annotations[op.COMMAND_ANNOTATION] = None  # consumed


@kopf.on.field(*RESOURCE, field="spec.paused", when=_live)
def paused_changed(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    _advance(body, patch, memo, None)


@kopf.on.delete(*RESOURCE)
def finalize(
    body: kopf.Body, name: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    METRICS.forget(namespace or "default", name or "")
    try:
        op.finalize(_deps(memo, _spec(body), namespace or "default"))
    except op.DependencyError as exc:
        raise kopf.TemporaryError(str(exc), delay=SETTINGS.tick_s) from exc
