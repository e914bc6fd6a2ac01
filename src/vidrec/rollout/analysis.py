"""Metric analysis: built-in PromQL templates, and numbers → a verdict with its reason.

No I/O. The operator asks :func:`queries_for` which queries a metric needs, runs each
through its provider (a missing value is ``None``), and hands the numbers to
:func:`evaluate`. Thresholds are applied here, not in providers (as Flagger does). No data
is INCONCLUSIVE, never PASS: the engine pauses on it and never promotes.

Templates read the serving metrics (``vidrec_request_seconds{endpoint,variant}``,
``vidrec_score{head,variant}``) and, for quality, per-variant engagement counters that the
event processor exports: ``vidrec_requests_total{variant,code}``,
``vidrec_impressions_total{variant}``, ``vidrec_clicks_total{variant}``,
``vidrec_watch_seconds_sum|count{variant}`` and ``vidrec_watch_seconds_squared_total
{variant}`` (the sum of squares, so Welch's test gets an exact variance). Placeholders:
``{model}``, ``{stable}`` and ``{candidate}`` (variant label values), ``{interval}``.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vidrec.contracts import metrics as names
from vidrec.contracts.metrics import SCORE_BUCKETS
from vidrec.rollout import stats

if TYPE_CHECKING:
    from vidrec.rollout.spec import MetricSpec


class Verdict(enum.StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Threshold:
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        parts = ([f"min {self.min:g}"] if self.min is not None else []) + (
            [f"max {self.max:g}"] if self.max is not None else []
        )
        return " and ".join(parts) or "no threshold"


@dataclass(frozen=True)
class MetricResult:
    metric: str
    value: float | None  # None: no data
    verdict: Verdict
    reason: str  # names the value and the threshold, or what was missing


@dataclass(frozen=True)
class Measurement:
    value: float
    samples: float | None = None  # for templates with a minimum sample size


@dataclass(frozen=True)
class Placeholders:
    model: str
    stable: str  # variant label of the stable version
    candidate: str  # variant label of the candidate version
    interval: str  # PromQL range, e.g. "60s"

    @classmethod
    def of(cls, model: str, stable: str, candidate: str, interval_s: float) -> Placeholders:
        return cls(model, stable, candidate, f"{max(1, round(interval_s))}s")


@dataclass(frozen=True)
class Template:
    """Named PromQL queries and the pure function that turns their values into one number."""

    name: str
    queries: Mapping[str, str]
    combine: Callable[[Mapping[str, float]], Measurement]
    threshold: Threshold
    min_samples: int = 0
    doc: str = ""


_PLACEHOLDER = re.compile(r"\{(model|stable|candidate|interval)\}")


def render(text: str, p: Placeholders) -> str:
    """Fill the four placeholders; PromQL's own braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: str(getattr(p, m.group(1))), text)


def judge(value: float, threshold: Threshold) -> Verdict:
    """PASS inside [min, max] (either bound optional), FAIL outside, INCONCLUSIVE for NaN."""
    if math.isnan(value):
        return Verdict.INCONCLUSIVE
    too_low = threshold.min is not None and value < threshold.min
    too_high = threshold.max is not None and value > threshold.max
    return Verdict.FAIL if too_low or too_high else Verdict.PASS


# --- templates ------------------------------------------------------------------------------

_RATE = 'sum(rate({metric}{{variant="{{{v}}}"{extra}}}[{{interval}}]))'
_INC = 'sum(increase({metric}{{variant="{{{v}}}"{extra}}}[{{interval}}]))'


def _q(form: str, metric: str, v: str, extra: str = "", zero: bool = False) -> str:
    q = form.format(metric=metric, v=v, extra=extra)
    return f"({q} or vector(0))" if zero else q  # a counter that never moved: 0, not no data


def _p99(v: str) -> str:
    return (
        "histogram_quantile(0.99, sum by (le) "
        f'(rate({names.REQUEST_SECONDS}_bucket{{variant="{{{v}}}"}}[{{interval}}])))'
    )


def _mean_latency(v: str) -> dict[str, str]:
    return {
        f"{v}_sum": _q(_RATE, f"{names.REQUEST_SECONDS}_sum", v),
        f"{v}_count": _q(_RATE, f"{names.REQUEST_SECONDS}_count", v),
    }


def _mean_ratio(v: Mapping[str, float]) -> Measurement:
    if not (v["candidate_count"] and v["stable_count"]):
        return Measurement(math.nan)  # a variant served nothing in the window: inconclusive
    means = [v[f"{w}_sum"] / v[f"{w}_count"] for w in ("candidate", "stable")]
    return Measurement(_ratio(*means))


def _errors(v: str) -> dict[str, str]:
    return {
        f"{v}_errors": _q(_RATE, f"{names.REQUESTS}_total", v, ',code=~"5.."', zero=True),
        f"{v}_requests": _q(_RATE, f"{names.REQUESTS}_total", v),
    }


def _ratio(num: float, den: float) -> float:
    """num/den where 0/0 is "the same" (1.0) and x/0 is infinitely worse."""
    if den == 0:
        return 1.0 if num == 0 else math.inf
    return num / den


def _error_ratio(v: Mapping[str, float], who: str) -> float:
    return _ratio(v[f"{who}_errors"], v[f"{who}_requests"]) if v[f"{who}_requests"] else math.nan


def _ctr(v: Mapping[str, float]) -> Measurement:
    p = stats.two_proportion_test(
        v["candidate_clicks"],
        v["candidate_impressions"],
        v["stable_clicks"],
        v["stable_impressions"],
    )
    return Measurement(p, min(v["candidate_impressions"], v["stable_impressions"]))


def _moments(v: Mapping[str, float], who: str) -> tuple[float, float, float]:
    n, total, squares = v[f"{who}_count"], v[f"{who}_sum"], v[f"{who}_squares"]
    if n < 2:
        return (math.nan, math.nan, n)
    mean = total / n
    return mean, max(0.0, (squares - n * mean * mean) / (n - 1)), n


def _watch(v: Mapping[str, float]) -> Measurement:
    (ma, va, na), (mb, vb, nb) = _moments(v, "candidate"), _moments(v, "stable")
    if min(na, nb) < 2:
        return Measurement(math.nan, min(na, nb))
    return Measurement(stats.welch_test(ma, va, na, mb, vb, nb), min(na, nb))


_LE = (*(f"{b:g}" for b in SCORE_BUCKETS), "+Inf")


def _score_buckets(v: str) -> dict[str, str]:
    return {
        f"{v}_le_{le}": _q(
            _INC, f"{names.SCORE}_bucket", v, f',head="p_click",le="{le}"', zero=True
        )
        for le in _LE
    }


def _histogram(v: Mapping[str, float], who: str) -> list[float]:
    cumulative = [v[f"{who}_le_{le}"] for le in _LE]
    return [max(0.0, b - a) for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]


def _psi(v: Mapping[str, float]) -> Measurement:
    stable, candidate = _histogram(v, "stable"), _histogram(v, "candidate")
    n = min(sum(stable), sum(candidate))
    return Measurement(stats.psi(stable, candidate) if n > 0 else math.nan, n)


def _watch_queries(v: str) -> dict[str, str]:
    return {
        f"{v}_count": _q(_INC, f"{names.WATCH_SECONDS}_count", v, zero=True),
        f"{v}_sum": _q(_INC, f"{names.WATCH_SECONDS}_sum", v, zero=True),
        f"{v}_squares": _q(_INC, f"{names.WATCH_SECONDS_SQUARED}_total", v, zero=True),
    }


def _ctr_queries(v: str) -> dict[str, str]:
    return {
        f"{v}_clicks": _q(_INC, f"{names.CLICKS}_total", v, zero=True),
        f"{v}_impressions": _q(_INC, f"{names.IMPRESSIONS}_total", v, zero=True),
    }


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "latency-p99", {"candidate": _p99("candidate")},
            lambda v: Measurement(v["candidate"]), Threshold(max=0.1),
            doc="candidate p99 request latency, seconds (the SLA is 100 ms)",
        ),
        Template(
            "latency-p99-ratio", {"candidate": _p99("candidate"), "stable": _p99("stable")},
            lambda v: Measurement(_ratio(v["candidate"], v["stable"])), Threshold(max=1.2),
            doc="candidate p99 / stable p99",
        ),
        Template(
            "latency-mean-ratio", {**_mean_latency("candidate"), **_mean_latency("stable")},
            _mean_ratio, Threshold(max=1.5),
            doc="candidate mean latency / stable mean latency: steadier than a p99 ratio when"
            " few requests fall in the window",
        ),
        Template(
            "error-ratio", _errors("candidate"),
            lambda v: Measurement(_error_ratio(v, "candidate")), Threshold(max=0.01),
            doc="share of candidate requests answered 5xx",
        ),
        Template(
            "error-ratio-ratio", {**_errors("candidate"), **_errors("stable")},
            lambda v: Measurement(_ratio(_error_ratio(v, "candidate"), _error_ratio(v, "stable"))),
            Threshold(max=2.0), doc="candidate error ratio / stable error ratio",
        ),
        Template(
            "ctr-test", {**_ctr_queries("candidate"), **_ctr_queries("stable")}, _ctr,
            Threshold(min=0.05), min_samples=1000,
            doc="p-value that candidate CTR < stable CTR (two-proportion z-test); samples = "
            "impressions of the smaller variant",
        ),
        Template(
            "watch-time-test", {**_watch_queries("candidate"), **_watch_queries("stable")},
            _watch, Threshold(min=0.05), min_samples=200,
            doc="p-value that candidate mean watch time < stable's (Welch t-test)",
        ),
        Template(
            "score-psi", {**_score_buckets("candidate"), **_score_buckets("stable")}, _psi,
            Threshold(max=0.2), min_samples=500,
            doc="PSI of p_click score distributions, candidate vs stable",
        ),
    )
}  # fmt: skip


# --- evaluation -------------------------------------------------------------------------------


def queries_for(metric: MetricSpec, p: Placeholders) -> dict[str, str]:
    """Key → rendered query; the operator fetches each and passes the values to evaluate."""
    raw = TEMPLATES[metric.template].queries if metric.template else {"value": metric.query or ""}
    return {key: render(q, p) for key, q in raw.items()}


def evaluate(metric: MetricSpec, values: Mapping[str, float | None]) -> MetricResult:
    """One analysis run of ``metric`` from the values of its :func:`queries_for` keys."""
    template = TEMPLATES[metric.template] if metric.template else None
    keys = list(template.queries) if template else ["value"]
    missing = [k for k in keys if values.get(k) is None or math.isnan(values[k] or 0.0)]
    if missing:
        return _inconclusive(metric, None, f"no data for {', '.join(missing)}")
    known = {k: float(values[k] or 0.0) for k in keys}
    try:
        m = template.combine(known) if template else Measurement(known["value"])
    except ValueError as exc:  # inconsistent counters (e.g. a scrape in between)
        return _inconclusive(metric, None, f"unusable data: {exc}")
    if m.samples is not None and m.samples < metric.min_samples:
        return _inconclusive(metric, m.value, f"{m.samples:g} samples, need {metric.min_samples}")
    verdict = judge(m.value, metric.threshold)
    where = {Verdict.PASS: "within", Verdict.FAIL: "outside"}.get(verdict, "not comparable to")
    return MetricResult(
        metric.name, m.value, verdict, f"{metric.name} = {m.value:.4g}, {where} "
        f"{metric.threshold.describe()}",
    )  # fmt: skip


def _inconclusive(metric: MetricSpec, value: float | None, reason: str) -> MetricResult:
    value = None if value is None or math.isnan(value) else value
    return MetricResult(metric.name, value, Verdict.INCONCLUSIVE, f"{metric.name}: {reason}")
