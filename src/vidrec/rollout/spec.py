"""The ``ModelRollout`` custom resource (``vidrec.io/v1alpha1``) as typed values.

``RolloutSpec.from_dict`` turns the CR's ``spec`` into frozen dataclasses and rejects bad
input with a :class:`SpecError` that names the field (``spec.strategy.canary.steps[2]
.setWeight: must be 0..100``), so the operator can fail the resource permanently with a
message a person can act on. ``RolloutStatus`` is what the operator writes back
(``to_dict`` / ``from_dict``, camelCase). Durations are numbers of seconds or strings such
as ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``.

CR shape (camelCase)::

    model: ranker
    stableVersion: "3"            # Triton model version or a storage URI
    candidateVersion: "4"
    strategy:
      canary:                     # exactly one of canary / blueGreen
        steps: [{setWeight: 10}, {pause: {duration: 5m}}, {analysis: {successes: 2}},
                {pause: {}}]      # pause without duration waits for `resume`
        scaleDownDelaySeconds: 30
      blueGreen: {previewWeight: 0, autoPromotionSeconds: 600,
                  prePromotionAnalysis: true, scaleDownDelaySeconds: 30}
    analysis:
      interval: 1m
      failureLimit: 3
      inconclusiveLimit: 3
      metrics:
        - {name: latency, template: latency-p99-ratio, thresholdMax: 1.2}
        - {name: custom, provider: prometheus, query: "sum(...)", thresholdMin: 0.5,
           minSamples: 1000}
        - {name: load-test, provider: webhook,   # 2xx passes; no answer is INCONCLUSIVE
           webhook: {url: "http://hook/run", timeout: 2m, payload: {users: 50}}}
    trafficRouter: {type: gateway-table, params: {}}
                                  # kserve / gateway-api with storage-URI versions and
                                  # per-variant metrics: params.stableModelVersion and
                                  # params.candidateModelVersion (Triton versions) required
    sticky: true
    paused: false
    progressDeadlineSeconds: 600
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from vidrec.errors import InputError
from vidrec.rollout.analysis import TEMPLATES, Threshold, Verdict

HISTORY_LIMIT = 50  # analysis records kept in status (newest last)
PROMOTED = "Promoted"  # the one condition type, after Flagger


class SpecError(InputError):
    """Invalid ``ModelRollout`` spec; ``field_path`` says where (``spec.analysis.interval``)."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field_path = field_path
        self.message = message


# --- spec ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetWeight:
    """Route ``weight`` percent of users to the candidate, then go on at once."""

    weight: int


@dataclass(frozen=True)
class Pause:
    """Hold for ``duration_s``; ``None`` holds until a person resumes (or promotes)."""

    duration_s: float | None = None


@dataclass(frozen=True)
class AnalysisStep:
    """Hold until ``successes`` consecutive analysis runs pass at the current weight."""

    successes: int = 1


Step = SetWeight | Pause | AnalysisStep


@dataclass(frozen=True)
class CanaryStrategy:
    steps: tuple[Step, ...]
    scale_down_delay_s: float = 30.0  # old stable stays loaded this long after promotion


@dataclass(frozen=True)
class BlueGreenStrategy:
    preview_weight: int = 0  # share of users on the candidate during preview (0 = none)
    auto_promotion_s: float | None = None  # None: wait for `vidrec rollout promote`
    pre_promotion_analysis: bool = True
    scale_down_delay_s: float = 30.0


Strategy = CanaryStrategy | BlueGreenStrategy


@dataclass(frozen=True)
class WebhookSpec:
    """Where a ``provider: webhook`` check POSTs (Flagger-style: a 2xx answer passes)."""

    url: str
    timeout_s: float = 60.0  # past this the run is INCONCLUSIVE (a slow load test pauses)
    payload: Mapping[str, Any] = field(default_factory=dict)  # the JSON body, as written

    def key(self) -> str:
        """Canonical text of the spec: metrics with equal hooks share one provider."""
        return json.dumps(
            {"url": self.url, "timeout": self.timeout_s, "payload": self.payload},
            sort_keys=True,
            default=str,
        )


@dataclass(frozen=True)
class MetricSpec:
    """One analysis metric: a built-in ``template`` or a raw ``query`` (exactly one), or a
    ``webhook`` check (its optional ``query`` is rendered and posted with the payload)."""

    name: str
    provider: str = "prometheus"
    template: str | None = None
    query: str | None = None
    threshold_max: float | None = None
    threshold_min: float | None = None
    min_samples: int = 0  # templates that count samples: below this the run is INCONCLUSIVE
    webhook: WebhookSpec | None = None  # provider "webhook" only

    @property
    def threshold(self) -> Threshold:
        return Threshold(min=self.threshold_min, max=self.threshold_max)

    @property
    def provider_key(self) -> str:
        """Which built provider answers this metric (``Deps.providers`` is keyed by it)."""
        return f"webhook {self.webhook.key()}" if self.webhook is not None else self.provider


@dataclass(frozen=True)
class AnalysisSpec:
    interval_s: float = 60.0
    failure_limit: int = 3  # failed runs (in total) that roll back
    inconclusive_limit: int = 3  # inconclusive runs in a row that pause
    metrics: tuple[MetricSpec, ...] = ()


@dataclass(frozen=True)
class RouterSpec:
    type: str = "gateway-table"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutSpec:
    model: str
    stable_version: str
    candidate_version: str
    strategy: Strategy
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    traffic_router: RouterSpec = field(default_factory=RouterSpec)
    sticky: bool = True  # users keep their variant (hash of the user id)
    paused: bool = False
    progress_deadline_s: float = 600.0  # candidate must be loaded within this, else Failed

    @classmethod
    def from_dict(cls, raw: Any, where: str = "spec") -> RolloutSpec:
        d = _obj(raw, where)
        _known(d, where, _SPEC_KEYS)
        stable = _version(d.get("stableVersion"), f"{where}.stableVersion")
        candidate = _version(d.get("candidateVersion"), f"{where}.candidateVersion")
        if stable == candidate:
            raise SpecError(f"{where}.candidateVersion", f"must differ from stableVersion {stable}")
        spec = cls(
            model=_name(d.get("model"), f"{where}.model"),
            stable_version=stable,
            candidate_version=candidate,
            strategy=_strategy(d.get("strategy"), f"{where}.strategy"),
            analysis=_analysis(d.get("analysis", {}), f"{where}.analysis"),
            traffic_router=_router(d.get("trafficRouter", {}), f"{where}.trafficRouter"),
            sticky=_bool(d.get("sticky", True), f"{where}.sticky"),
            paused=_bool(d.get("paused", False), f"{where}.paused"),
            progress_deadline_s=_duration(
                d.get("progressDeadlineSeconds", 600), f"{where}.progressDeadlineSeconds"
            ),
        )
        _router_fits(spec, f"{where}.trafficRouter")
        return spec

    def model_version(self, which: str) -> int:
        """The Triton version inside the ``stable``/``candidate`` side: the version itself
        when it is a number, else ``params.<which>ModelVersion``, else 0 (not known)."""
        raw: str = getattr(self, f"{which}_version")
        given = self.traffic_router.params.get(f"{which}ModelVersion")
        if raw.isdigit():
            return int(raw)
        return given if isinstance(given, int) and not isinstance(given, bool) else 0


_SPEC_KEYS = frozenset(
    {"model", "stableVersion", "candidateVersion", "strategy", "analysis", "trafficRouter",
     "sticky", "paused", "progressDeadlineSeconds"}
)  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_VERSION = re.compile(r"^([1-9][0-9]*|[a-z][a-z0-9+.-]*://\S+)$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$")


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a number or ``"500ms" | "30s" | "5m" | "1h"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        raise SpecError(where, f'must be a duration like "30s", "5m" or seconds, got {value!r}')
    if not math.isfinite(seconds) or seconds < 0:
        raise SpecError(where, f"must be a non-negative duration, got {value!r}")
    return seconds


_duration = parse_duration


def _obj(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(where, f"must be an object, got {type(raw).__name__}")
    return raw


def _known(d: Mapping[str, Any], where: str, keys: frozenset[str]) -> None:
    unknown = sorted(set(d) - keys)
    if unknown:
        raise SpecError(
            f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(keys))})"
        )


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(where, f"must be a lowercase name ([a-z0-9_.-]), got {value!r}")
    return value


def _version(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _VERSION.match(text):
        raise SpecError(
            where, f"must be a Triton model version (>= 1) or a storage URI, got {value!r}"
        )
    return text


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"must be true or false, got {value!r}")
    return value


def _int(value: Any, where: str, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise SpecError(where, f"must be an integer {span}, got {value!r}")
    return int(value)


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(where, f"must be a finite number, got {value!r}")
    return float(value)


def _step(raw: Any, where: str) -> Step:
    d = _obj(raw, where)
    if len(d) != 1:
        raise SpecError(
            where, f"must have exactly one of setWeight, pause, analysis, got {list(d)}"
        )
    ((kind, body),) = d.items()
    if kind == "setWeight":
        return SetWeight(_int(body, f"{where}.setWeight", 0, 100))
    if kind == "pause":
        b = _obj(body if body is not None else {}, f"{where}.pause")
        _known(b, f"{where}.pause", frozenset({"duration"}))
        dur = b.get("duration")
        return Pause(None if dur is None else parse_duration(dur, f"{where}.pause.duration"))
    if kind == "analysis":
        b = _obj(body if body is not None else {}, f"{where}.analysis")
        _known(b, f"{where}.analysis", frozenset({"successes"}))
        return AnalysisStep(_int(b.get("successes", 1), f"{where}.analysis.successes", 1))
    raise SpecError(f"{where}.{kind}", "unknown step (setWeight, pause, analysis)")


def _strategy(raw: Any, where: str) -> Strategy:
    d = _obj(raw, where)
    if set(d) not in ({"canary"}, {"blueGreen"}):
        raise SpecError(where, f"must have exactly one of canary, blueGreen, got {sorted(d)}")
    if "canary" in d:
        w = f"{where}.canary"
        c = _obj(d["canary"], w)
        _known(c, w, frozenset({"steps", "scaleDownDelaySeconds"}))
        steps = c.get("steps")
        if not isinstance(steps, list) or not steps:
            raise SpecError(f"{w}.steps", "must be a non-empty list")
        return CanaryStrategy(
            steps=tuple(_step(s, f"{w}.steps[{i}]") for i, s in enumerate(steps)),
            scale_down_delay_s=parse_duration(
                c.get("scaleDownDelaySeconds", 30), f"{w}.scaleDownDelaySeconds"
            ),
        )
    w = f"{where}.blueGreen"
    b = _obj(d["blueGreen"], w)
    keys = {
        "previewWeight",
        "autoPromotionSeconds",
        "prePromotionAnalysis",
        "scaleDownDelaySeconds",
    }
    _known(b, w, frozenset(keys))
    auto = b.get("autoPromotionSeconds")
    return BlueGreenStrategy(
        preview_weight=_int(b.get("previewWeight", 0), f"{w}.previewWeight", 0, 99),
        auto_promotion_s=None
        if auto is None
        else parse_duration(auto, f"{w}.autoPromotionSeconds"),
        pre_promotion_analysis=_bool(
            b.get("prePromotionAnalysis", True), f"{w}.prePromotionAnalysis"
        ),
        scale_down_delay_s=parse_duration(
            b.get("scaleDownDelaySeconds", 30), f"{w}.scaleDownDelaySeconds"
        ),
    )


_METRIC_KEYS = frozenset(
    {"name", "provider", "template", "query", "thresholdMax", "thresholdMin", "minSamples",
     "webhook"}
)  # fmt: skip
_PROVIDER_NAMES = ("prometheus", "webhook")  # vidrec.rollout.providers.PROVIDERS


def _webhook(raw: Any, where: str) -> WebhookSpec:
    if raw is None:
        raise SpecError(f"{where}.url", "required for provider: webhook (the hook's http(s) URL)")
    d = _obj(raw, where)
    _known(d, where, frozenset({"url", "timeout", "payload"}))
    url = d.get("url")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if (
        not isinstance(url, str)
        or parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
    ):
        raise SpecError(f"{where}.url", f"must be an http(s) URL with a host, got {url!r}")
    timeout = parse_duration(d.get("timeout", 60), f"{where}.timeout")
    if timeout <= 0:
        raise SpecError(f"{where}.timeout", "must be > 0")
    payload = _obj(d.get("payload", {}), f"{where}.payload")
    return WebhookSpec(url=url, timeout_s=timeout, payload=payload)


def _metric(raw: Any, where: str) -> MetricSpec:
    d = _obj(raw, where)
    _known(d, where, _METRIC_KEYS)
    provider = _name(d.get("provider", "prometheus"), f"{where}.provider")
    if provider not in _PROVIDER_NAMES:
        raise SpecError(
            f"{where}.provider", f"unknown provider {provider!r} {list(_PROVIDER_NAMES)}"
        )
    template, query = d.get("template"), d.get("query")
    hook: WebhookSpec | None = None
    if provider == "webhook":
        if template is not None:
            raise SpecError(
                f"{where}.template", "a webhook check has no template (its hook decides; a query "
                "is optional and posted with the payload)",
            )  # fmt: skip
        hook = _webhook(d.get("webhook"), f"{where}.webhook")
    else:
        if "webhook" in d:
            raise SpecError(f"{where}.webhook", f"only for provider: webhook, not {provider!r}")
        if (template is None) == (query is None):
            raise SpecError(where, "must have exactly one of template, query")
    if template is not None and template not in TEMPLATES:
        raise SpecError(f"{where}.template", f"unknown template {template!r} ({sorted(TEMPLATES)})")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise SpecError(f"{where}.query", "must be a non-empty string")
    lo = _number(d.get("thresholdMin"), f"{where}.thresholdMin")
    hi = _number(d.get("thresholdMax"), f"{where}.thresholdMax")
    if template is not None and lo is None and hi is None:
        lo, hi = TEMPLATES[template].threshold.min, TEMPLATES[template].threshold.max
    if hook is not None and lo is None and hi is None:
        lo = 1.0  # the provider answers 1.0 for a 2xx, 0.0 otherwise
    if lo is None and hi is None:
        raise SpecError(where, "needs thresholdMax and/or thresholdMin")
    if lo is not None and hi is not None and lo > hi:
        raise SpecError(f"{where}.thresholdMin", f"must be <= thresholdMax {hi:g}, got {lo:g}")
    default_n = TEMPLATES[template].min_samples if template is not None else 0
    return MetricSpec(
        name=_name(d.get("name"), f"{where}.name"),
        provider=provider,
        template=template,
        query=query,
        threshold_max=hi,
        threshold_min=lo,
        min_samples=_int(d.get("minSamples", default_n), f"{where}.minSamples", 0),
        webhook=hook,
    )


def _analysis(raw: Any, where: str) -> AnalysisSpec:
    d = _obj(raw, where)
    _known(d, where, frozenset({"interval", "failureLimit", "inconclusiveLimit", "metrics"}))
    metrics_raw = d.get("metrics", [])
    if not isinstance(metrics_raw, list):
        raise SpecError(f"{where}.metrics", "must be a list")
    metrics = tuple(_metric(m, f"{where}.metrics[{i}]") for i, m in enumerate(metrics_raw))
    seen: set[str] = set()
    for i, m in enumerate(metrics):
        if m.name in seen:
            raise SpecError(f"{where}.metrics[{i}].name", f"duplicate metric {m.name!r}")
        seen.add(m.name)
    interval = parse_duration(d.get("interval", 60), f"{where}.interval")
    if interval <= 0:
        raise SpecError(f"{where}.interval", "must be > 0")
    return AnalysisSpec(
        interval_s=interval,
        failure_limit=_int(d.get("failureLimit", 3), f"{where}.failureLimit", 1),
        inconclusive_limit=_int(d.get("inconclusiveLimit", 3), f"{where}.inconclusiveLimit", 1),
        metrics=metrics,
    )


def _router(raw: Any, where: str) -> RouterSpec:
    d = _obj(raw, where)
    _known(d, where, frozenset({"type", "params"}))
    params = _obj(d.get("params", {}), f"{where}.params")
    return RouterSpec(type=_name(d.get("type", "gateway-table"), f"{where}.type"), params=params)


UPSTREAM_SPLIT_ROUTERS = frozenset({"kserve", "gateway-api"})  # the split is before Triton


def _router_fits(spec: RolloutSpec, where: str) -> None:
    """Reject routers that cannot give per-variant metrics the candidate data they judge.

    Webhook checks bring their own traffic (a load test), so they fit every router.
    """
    router, params = spec.traffic_router, spec.traffic_router.params
    variant_metrics = [m.name for m in spec.analysis.metrics if m.webhook is None]
    if router.type == "nop" and variant_metrics:
        raise SpecError(
            f"{where}.type",
            f"nop moves no traffic, so no user reaches the candidate and {variant_metrics} "
            "would never see candidate data (the rollout could only pause); use a router "
            "that moves traffic, or only provider: webhook checks",
        )
    for which in ("stable", "candidate"):
        key = f"{which}ModelVersion"
        if key not in params:
            continue
        given = _int(params[key], f"{where}.params.{key}", 1)
        raw: str = getattr(spec, f"{which}_version")
        if raw.isdigit() and int(raw) != given:
            raise SpecError(
                f"{where}.params.{key}",
                f"must equal {which}Version {raw} when that is a Triton version, got {given}",
            )
    if router.type not in UPSTREAM_SPLIT_ROUTERS or not variant_metrics:
        return
    why = (
        f"under {router.type} the split happens before Triton, so serving labels each "
        "request with the variant whose Triton model version answered; without it "
        f"{variant_metrics} cannot tell the variants apart"
    )
    for which in ("stable", "candidate"):
        if not spec.model_version(which):
            raw = getattr(spec, f"{which}_version")
            raise SpecError(
                f"{where}.params.{which}ModelVersion",
                f"required (an int >= 1, the Triton version inside {raw!r}): {why}",
            )
    if spec.model_version("stable") == spec.model_version("candidate"):
        raise SpecError(
            f"{where}.params.candidateModelVersion",
            f"must differ from the stable side's Triton version "
            f"{spec.model_version('stable')}: {why}",
        )


# --- status -------------------------------------------------------------------------------


class Phase(enum.StrEnum):
    PENDING = "Pending"  # accepted, nothing done yet
    PROGRESSING = "Progressing"  # candidate loading, or traffic moving step by step
    PAUSED = "Paused"  # held: a pause step, `pause`, spec.paused, or inconclusive analysis
    PROMOTING = "Promoting"  # all traffic on the candidate; old stable waits for scale-down
    SUCCEEDED = "Succeeded"  # candidate is the new stable, old stable unloaded
    ROLLED_BACK = "RolledBack"  # analysis failed or aborted: all traffic back on stable
    FAILED = "Failed"  # could not proceed (candidate never became ready)

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED)


@dataclass(frozen=True)
class AnalysisRecord:
    metric: str
    value: float | None  # None: no data
    verdict: Verdict
    at: float  # unix seconds
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        value = self.value if self.value is None or math.isfinite(self.value) else str(self.value)
        return {"metric": self.metric, "value": value, "verdict": self.verdict.value,
                "time": _iso(self.at), "reason": self.reason}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnalysisRecord:
        v = d.get("value")
        return cls(d["metric"], None if v is None else float(v), Verdict(d["verdict"]),
                   _unix(d["time"]), d.get("reason", ""))  # fmt: skip


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "reason": self.reason,
                "message": self.message,
                "lastTransitionTime": _iso(self.last_transition_time)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        return cls(d["type"], d["status"], d.get("reason", ""), d.get("message", ""),
                   _unix(d["lastTransitionTime"]))  # fmt: skip


_PROMOTED_STATUS = {
    Phase.SUCCEEDED: ("True", "the candidate is the new stable"),
    Phase.ROLLED_BACK: ("False", "all traffic is back on the stable version"),
    Phase.FAILED: ("False", "the rollout could not proceed"),
}


def conditions_for(
    phase: Phase, previous: tuple[Condition, ...], now: float
) -> tuple[Condition, ...]:
    """The single ``Promoted`` condition for ``phase``; its transition time moves only when
    its status changes (a pause inside a rollout is not a transition of ``Promoted``)."""
    status, message = _PROMOTED_STATUS.get(phase, ("Unknown", "rollout in progress"))
    old = next((c for c in previous if c.type == PROMOTED), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    return (Condition(PROMOTED, status, phase.value, message, since),)


@dataclass(frozen=True)
class RolloutStatus:
    phase: Phase = Phase.PENDING
    step_index: int = 0  # canary: next step to run; blue-green: 0 preview, 1 switched
    canary_weight: int = 0  # percent of users on the candidate
    failed_checks: int = 0
    inconclusive_checks: int = 0  # in a row
    passed_checks: int = 0  # in a row, at the current step
    started_at: float | None = None  # Progressing began (progress deadline)
    loaded_at: float | None = None  # candidate first seen ready
    step_started_at: float | None = None  # current step (or promotion) began
    last_analysis_at: float | None = None
    pause_reason: str | None = None  # see engine.PauseReason values
    history: tuple[AnalysisRecord, ...] = ()
    message: str = ""
    conditions: tuple[Condition, ...] = ()

    def replace(self, **changes: Any) -> RolloutStatus:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The CR ``status`` (camelCase, times as RFC 3339)."""
        return {
            "phase": self.phase.value,
            "currentStep": self.step_index,
            "canaryWeight": self.canary_weight,
            "failedChecks": self.failed_checks,
            "inconclusiveChecks": self.inconclusive_checks,
            "passedChecks": self.passed_checks,
            "startedAt": _iso_or_none(self.started_at),
            "loadedAt": _iso_or_none(self.loaded_at),
            "stepStartedAt": _iso_or_none(self.step_started_at),
            "lastAnalysisAt": _iso_or_none(self.last_analysis_at),
            "pauseReason": self.pause_reason,
            "analysisHistory": [r.to_dict() for r in self.history],
            "message": self.message,
            "conditions": [c.to_dict() for c in self.conditions],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> RolloutStatus:
        """Inverse of :meth:`to_dict`; an empty or missing status is a new rollout."""
        d = raw or {}
        if "phase" not in d:
            return cls()
        return cls(
            phase=Phase(d["phase"]),
            step_index=int(d.get("currentStep", 0)),
            canary_weight=int(d.get("canaryWeight", 0)),
            failed_checks=int(d.get("failedChecks", 0)),
            inconclusive_checks=int(d.get("inconclusiveChecks", 0)),
            passed_checks=int(d.get("passedChecks", 0)),
            started_at=_unix_or_none(d.get("startedAt")),
            loaded_at=_unix_or_none(d.get("loadedAt")),
            step_started_at=_unix_or_none(d.get("stepStartedAt")),
            last_analysis_at=_unix_or_none(d.get("lastAnalysisAt")),
            pause_reason=d.get("pauseReason"),
            history=tuple(AnalysisRecord.from_dict(r) for r in d.get("analysisHistory", [])),
            message=d.get("message", ""),
            conditions=tuple(Condition.from_dict(c) for c in d.get("conditions", [])),
        )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unix(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def _iso_or_none(t: float | None) -> str | None:
    return None if t is None else _iso(t)


def _unix_or_none(s: str | None) -> float | None:
    return None if s is None else _unix(s)
