"""Per-second record of a load run and the run summary the locustfile writes at exit.

Locust's own CSV keeps cumulative and 10-second rolling figures; chaos recovery times and
soak drift need each second on its own: requests, failures, server errors (5xx or gRPC
UNAVAILABLE/INTERNAL/UNKNOWN), degraded answers and the latencies themselves (kept, rounded to
0.1 ms, so windows can be merged and their percentiles computed exactly). The degraded share's
denominator is the successful recommendation answers, not all requests: engagement events and
failed calls cannot be degraded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidrec_dev.loadtest.sla import Sla, Verdict


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def share(part: int, whole: int) -> float:
    """``part / whole``; NaN when ``whole`` is 0 (no share to speak of, not 0 %)."""
    return part / whole if whole else math.nan


@dataclass
class Second:
    """What happened in one wall-clock second (``t`` = epoch seconds)."""

    t: int
    requests: int = 0
    failures: int = 0
    server_errors: int = 0
    degraded: int = 0
    answers: int = 0  # successful recommendation answers (the degraded rate's denominator)
    latencies_ms: list[float] = field(default_factory=list)

    def add(
        self, ms: float, failed: bool, server_error: bool, degraded: bool, answer: bool
    ) -> None:
        self.requests += 1
        self.failures += failed
        self.server_errors += server_error
        self.degraded += degraded and answer  # a failed call is a failure, not a degraded answer
        self.answers += answer
        self.latencies_ms.append(round(ms, 1))

    def merge(self, other: Second) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.server_errors += other.server_errors
        self.degraded += other.degraded
        self.answers += other.answers
        self.latencies_ms.extend(other.latencies_ms)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Second:
        return cls(**data)


class Recorder:
    """Called from Locust's ``request`` event hook; cheap: one dict lookup and an append."""

    def __init__(self) -> None:
        self.seconds: dict[int, Second] = {}

    def record(
        self, at: float, ms: float, failed: bool, server_error: bool, degraded: bool, answer: bool
    ) -> None:
        t = int(at)
        sec = self.seconds.get(t)
        if sec is None:
            sec = self.seconds[t] = Second(t)
        sec.add(ms, failed, server_error, degraded, answer)

    def timeline(self) -> list[Second]:
        return [self.seconds[t] for t in sorted(self.seconds)]


@dataclass(frozen=True)
class Window:
    """Aggregates over a run of seconds."""

    seconds: int
    requests: int
    failures: int
    server_errors: int
    degraded: int
    answers: int
    p50_ms: float
    p99_ms: float
    rps: float

    @property
    def fail_ratio(self) -> float:
        return share(self.failures, self.requests)

    @property
    def server_error_ratio(self) -> float:
        return share(self.server_errors, self.requests)

    @property
    def degraded_ratio(self) -> float:
        return share(self.degraded, self.answers)


def window(seconds: Iterable[Second], span_s: int | None = None) -> Window:
    secs = list(seconds)
    lat = [ms for s in secs for ms in s.latencies_ms]
    span = span_s if span_s is not None else (secs[-1].t - secs[0].t + 1 if secs else 0)
    n = sum(s.requests for s in secs)
    return Window(
        seconds=span,
        requests=n,
        failures=sum(s.failures for s in secs),
        server_errors=sum(s.server_errors for s in secs),
        degraded=sum(s.degraded for s in secs),
        answers=sum(s.answers for s in secs),
        p50_ms=percentile(lat, 0.50),
        p99_ms=percentile(lat, 0.99),
        rps=n / span if span else math.nan,
    )


def between(timeline: Sequence[Second], start: float, end: float) -> list[Second]:
    """Seconds with ``start <= t < end`` (epoch seconds)."""
    return [s for s in timeline if start <= s.t < end]


def merge_timelines(*timelines: Sequence[Second]) -> list[Second]:
    """Several Locust processes' timelines as one (same wall clock)."""
    out: dict[int, Second] = {}
    for tl in timelines:
        for s in tl:
            if s.t not in out:
                out[s.t] = Second(s.t)
            out[s.t].merge(s)
    return [out[t] for t in sorted(out)]


@dataclass
class RunSummary:
    """Everything a run's caller needs, written by the locustfile's ``quitting`` hook."""

    sla: Sla
    verdict: Verdict
    users: int
    started_at: float
    ended_at: float
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    rps: float
    by_name: dict[str, dict[str, float]]
    accepted_events: list[tuple[str, int]]  # (event_id, user_id) answered 202
    timeline: list[Second]
    exit_code: int = 0
    degraded: int = 0  # recommendation answers served degraded, of ...
    answers: int = 0  # ... the successful recommendation answers

    @property
    def fail_ratio(self) -> float:
        return share(self.failures, self.requests)

    @property
    def degraded_ratio(self) -> float:
        return share(self.degraded, self.answers)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["accepted_events"] = [list(e) for e in self.accepted_events]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        return cls(
            **{
                **data,
                "sla": Sla(**data["sla"]),
                "verdict": Verdict(
                    **{**data["verdict"], "reasons": tuple(data["verdict"]["reasons"])}
                ),
                "accepted_events": [(str(i), int(u)) for i, u in data["accepted_events"]],
                "timeline": [Second.from_json(s) for s in data["timeline"]],
            }
        )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), allow_nan=True))
        tmp.replace(path)
        return path


def read_summary(path: Path) -> RunSummary:
    return RunSummary.from_json(json.loads(path.read_text()))
