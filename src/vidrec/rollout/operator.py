"""The operator's glue: read the world, call :func:`vidrec.rollout.engine.step`, apply.

One :func:`tick` per timer firing (or spec/command change): the router's live weights, an
analysis run through the metric providers when :func:`~vidrec.rollout.engine.analysis_due`
says so, the candidate's readiness in Triton, and a person's command annotation go into
:class:`~vidrec.rollout.engine.Observed`; the decision's actions are applied in order and
only then is the new status returned (the handler writes it). An unreachable dependency
raises :class:`DependencyError` before anything is written, so the next tick recomputes the
same decision. The kopf handlers in ``operators/rollout`` stay thin: they call this module.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vidrec.config import load_config
from vidrec.rollout import engine
from vidrec.rollout.analysis import MetricResult, Placeholders, evaluate, queries_for
from vidrec.rollout.engine import Action, Notify, Observed
from vidrec.rollout.notify import Notifier, NullNotifier, notifier_for
from vidrec.rollout.providers import (
    PROVIDERS,
    MetricProvider,
    NoData,
    ProviderError,
    WebhookProvider,
)
from vidrec.rollout.routers import ROUTERS, RouteTarget, TrafficRouter
from vidrec.rollout.spec import MetricSpec, RolloutSpec, RolloutStatus

COMMAND_ANNOTATION = "vidrec.io/command"
COMMANDS = tuple(c.value for c in engine.Command)
# Variant labels the serving side exports (vidrec_request_seconds{variant=...}); the
# gateway-table router names the two routes the same way.
STABLE_VARIANT, CANDIDATE_VARIANT = "stable", "canary"


class DependencyError(RuntimeError):
    """A router, metric backend or Triton did not answer: retry the tick later."""


class Models(Protocol):
    """Model state in the serving backend (``vidrec.rollout.triton_control.TritonModels``)."""

    def ready(self, version: int) -> bool: ...
    def ensure_loaded(self, version: int) -> None: ...
    def unload(self, version: int) -> None: ...


class ExternalModels:
    """No model management here (KServe or a person loads versions): always ready."""

    def ready(self, version: int) -> bool:
        return True

    def ensure_loaded(self, version: int) -> None:
        return None

    def unload(self, version: int) -> None:
        return None


@dataclass(frozen=True)
class OperatorSettings:
    """``VIDREC_ROLLOUT__*``: tick interval, where Prometheus and Triton answer."""

    tick_s: float = 5.0
    prometheus_url: str = ""  # "" → the local stack's Prometheus
    triton_url: str = ""  # "" → versions are managed elsewhere (ExternalModels)
    metrics_port: int = 0  # the operator's /metrics (vidrec_rollout_*); 0 = not served
    notifier: Notifier = field(default_factory=NullNotifier)  # transitions besides Events
    triton_service: str = ""  # [ns/]Service: versions on its every endpoint (TritonFleet)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        cfg = load_config(env)
        r = cfg.rollout
        if not r.tick_s > 0:
            raise ValueError(f"VIDREC_ROLLOUT__TICK_S: must be > 0, got {r.tick_s}")
        prometheus = r.prometheus_url or f"http://127.0.0.1:{cfg.stack.prometheus_port}"
        if not 0 <= r.metrics_port <= 65535:
            raise ValueError(f"VIDREC_ROLLOUT__METRICS_PORT: not a port, got {r.metrics_port}")
        notifier = notifier_for(r.notifier, {"url": r.notifier_url}) if r.notifier else None
        if r.triton_service:  # a bad name fails the operator's start, not every rollout
            from vidrec.rollout.triton_fleet import parse_service

            parse_service(r.triton_service)
        return cls(r.tick_s, prometheus, r.triton_url, r.metrics_port,
                   notifier or NullNotifier(), r.triton_service)  # fmt: skip


@dataclass
class Deps:
    """What one rollout talks to; built per object and spec (:func:`cached_deps`)."""

    router: TrafficRouter
    providers: Mapping[str, MetricProvider]
    models: Models = field(default_factory=ExternalModels)


def build_deps(spec: RolloutSpec, namespace: str, settings: OperatorSettings) -> Deps:
    """Router and providers from the registries; Triton when a Service or URL is configured
    (:func:`~vidrec.rollout.triton_fleet.models_for`)."""
    params = spec.traffic_router.params
    target = RouteTarget(
        model=spec.model,
        stable=spec.stable_version,
        candidate=spec.candidate_version,
        namespace=namespace,
        name=str(params.get("name", "")),
        stable_backend=str(params.get("stableBackend", "")),
        candidate_backend=str(params.get("candidateBackend", "")),
        mode=str(params.get("mode", "")),
        stable_model_version=spec.model_version("stable"),
        candidate_model_version=spec.model_version("candidate"),
        labels_configmap=str(params.get("labelsConfigMap", "")),
    )
    if spec.traffic_router.type not in ROUTERS:
        known = sorted(ROUTERS)
        raise ValueError(f"spec.trafficRouter.type: unknown {spec.traffic_router.type!r} {known}")
    providers = build_providers(spec, settings)
    from vidrec.rollout.triton_fleet import models_for

    models = models_for(settings, spec.model, namespace)
    router = ROUTERS[spec.traffic_router.type](target)
    _guard("trafficRouter.reconcile", router.reconcile)
    return Deps(router, providers, models)


def build_providers(spec: RolloutSpec, settings: OperatorSettings) -> dict[str, MetricProvider]:
    """One provider per distinct provider spec (``MetricSpec.provider_key``): Prometheus
    from the settings, each webhook from its metric's ``webhook`` block."""
    providers: dict[str, MetricProvider] = {
        "prometheus": PROVIDERS["prometheus"](settings.prometheus_url)  # type: ignore[call-arg]
    }
    for metric in spec.analysis.metrics:
        hook = metric.webhook
        if hook is not None and metric.provider_key not in providers:
            providers[metric.provider_key] = WebhookProvider(
                hook.url, payload=hook.payload, timeout_s=hook.timeout_s
            )
    return providers


def deps_key(spec: RolloutSpec, namespace: str) -> str:
    """What the deps are built from (model, versions, router, metric providers), hashed:
    a spec edit that changes any of it must rebuild them, and nothing else should."""
    parts = {
        "namespace": namespace,
        "model": spec.model,
        "versions": [spec.stable_version, spec.candidate_version],
        "router": [spec.traffic_router.type, spec.traffic_router.params],
        "providers": sorted({m.provider_key for m in spec.analysis.metrics}),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cached_deps(
    cache: MutableMapping[str, Any],
    spec: RolloutSpec,
    namespace: str,
    settings: OperatorSettings,
    build: Callable[[RolloutSpec, str, OperatorSettings], Deps] = build_deps,
) -> Deps:
    """``cache``'s deps (kopf's per-object ``memo``) while :func:`deps_key` is unchanged;
    else new ones, so an edited ``spec.trafficRouter`` takes effect on the next tick. The old
    router's object is left as it is (the new router is reconciled to the status's weights).
    """
    key = deps_key(spec, namespace)
    old: Deps | None = cache.get("deps")
    if old is not None and cache.get("deps_key") == key:
        return old
    deps = build(spec, namespace, settings)
    if old is not None:
        close_providers(old)
    cache["deps"], cache["deps_key"] = deps, key
    return deps


def close_providers(deps: Deps) -> None:
    """Release the providers' HTTP clients (deps being replaced or dropped)."""
    for provider in deps.providers.values():
        close = getattr(provider, "close", None)
        if callable(close):
            close()


@dataclass(frozen=True)
class TickResult:
    status: dict[str, Any]  # the new status (camelCase), for patch.status
    events: tuple[Notify, ...]  # one per transition: the handler emits them as Events
    phase: str
    weight: int = 0  # the candidate's share after this tick
    results: tuple[MetricResult, ...] = ()  # the analysis run this tick made, if one was due


def _guard(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (ProviderError, OSError, ConnectionError) as exc:
        raise DependencyError(f"{what}: {exc}") from exc
    except Exception as exc:  # redis/httpx/kubernetes errors: all "not reachable now"
        if type(exc).__module__.split(".")[0] in {"redis", "httpx", "kubernetes", "urllib3"}:
            raise DependencyError(f"{what}: {exc}") from exc
        raise


def _version(spec: RolloutSpec, which: str) -> int:
    raw = getattr(spec, f"{which}_version")
    return int(raw) if raw.isdigit() else 0


def _query(provider: MetricProvider, metric: str, promql: str) -> float | None:
    try:
        value: float = _guard(f"metric {metric}", lambda: provider.query(promql))
    except DependencyError as exc:
        if isinstance(exc.__cause__, NoData):
            return None  # no data is INCONCLUSIVE, never a failure
        raise
    return value


def measure(
    metric: MetricSpec, spec: RolloutSpec, providers: Mapping[str, MetricProvider]
) -> MetricResult:
    """One analysis run of one metric: every query through its provider; no data → None."""
    if metric.provider_key not in providers:
        raise ValueError(f"spec.analysis.metrics[{metric.name}].provider: no {metric.provider!r}")
    provider = providers[metric.provider_key]
    p = Placeholders.of(spec.model, STABLE_VARIANT, CANDIDATE_VARIANT, spec.analysis.interval_s)
    queries = queries_for(metric, p)
    values = {key: _query(provider, metric.name, q) for key, q in queries.items()}
    return evaluate(metric, values)


def observe(
    spec: RolloutSpec, status: RolloutStatus, deps: Deps, command: str | None, now: float
) -> Observed:
    """Read the world: live weights, a due analysis run, candidate readiness, the command."""
    weights = _guard("trafficRouter.getWeights", deps.router.get_weights)
    results: tuple[MetricResult, ...] = ()
    if engine.analysis_due(spec, status, now):
        results = tuple(measure(m, spec, deps.providers) for m in spec.analysis.metrics)
    version = _version(spec, "candidate")
    ready = _guard("models.ready", lambda: deps.models.ready(version))
    return Observed(weights=weights, results=results, candidate_ready=ready, command=command)


def apply(action: Action, spec: RolloutSpec, deps: Deps) -> None:
    """Make one action true in the world (idempotent: absolute weights, ensure-loaded)."""
    if isinstance(action, engine.SetWeights):
        _guard(
            "trafficRouter.setWeights",
            lambda: deps.router.set_weights(action.stable, action.candidate),
        )
    elif isinstance(action, engine.LoadCandidate):
        _guard("models.load", lambda: deps.models.ensure_loaded(_version(spec, "candidate")))
    elif isinstance(action, engine.UnloadCandidate):
        _guard("models.unload", lambda: deps.models.unload(_version(spec, "candidate")))
    elif isinstance(action, engine.UnloadStable):
        _guard("models.unload", lambda: deps.models.unload(_version(spec, "stable")))


def tick(
    spec: RolloutSpec,
    raw_status: Mapping[str, Any] | None,
    deps: Deps,
    command: str | None = None,
    now: float | None = None,
) -> TickResult:
    """Observe → ``engine.step`` → apply every action → the status to write."""
    now = time.time() if now is None else now
    status = RolloutStatus.from_dict(raw_status)
    observed = observe(spec, status, deps, command, now)
    decision = engine.step(spec, status, observed, now)
    for action in decision.actions:
        apply(action, spec, deps)
    events = tuple(a for a in decision.actions if isinstance(a, Notify))
    new = decision.status
    return TickResult(new.to_dict(), events, new.phase.value, new.canary_weight, observed.results)


def finalize(deps: Deps) -> None:
    """The rollout object is going away: leave one version serving."""
    _guard("trafficRouter.finalize", deps.router.finalize)


def check_command(raw: str | None) -> str | None:
    """The annotation's command, or a ValueError naming the annotation."""
    if raw is None:
        return None
    if raw.strip().lower() not in COMMANDS:
        raise ValueError(f"metadata.annotations[{COMMAND_ANNOTATION}]: {raw!r} not in {COMMANDS}")
    return raw.strip().lower()
