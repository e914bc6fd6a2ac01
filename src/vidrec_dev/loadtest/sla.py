"""The latency SLA gate: p99, failure ratio and degraded share of a whole run against limits.

A degraded answer is an HTTP 200 (or gRPC OK) whose body says ``degraded``: a stage was skipped
and the user got a worse feed. It is not an error, so it is not a Locust failure, but an SLA met
only by degrading is not met: the gate judges the degraded share of recommendation answers
beside p99 and the failure ratio. The Locust ``quitting`` hook calls :func:`judge` and sets the
process exit code from the verdict, so a CI job fails when the SLA is broken;
``vidrec bench capacity`` judges each step with the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_P99_MS = 100.0
DEFAULT_FAIL_RATIO = 0.001  # 0.1 %
DEFAULT_DEGRADED_RATIO = 0.01  # 1 % of recommendation answers
EXIT_SLA_BROKEN = 3  # distinct from Locust's own 1 (errors) and 2 (bad arguments)


def _check_ratio(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"sla {name}: must be within [0, 1], got {value}")


@dataclass(frozen=True)
class Sla:
    """What a run must achieve: p99 ≤ ``p99_ms``, failures ≤ ``fail_ratio`` of requests and
    degraded answers ≤ ``degraded_ratio`` of the recommendation answers."""

    p99_ms: float = DEFAULT_P99_MS
    fail_ratio: float = DEFAULT_FAIL_RATIO
    degraded_ratio: float = DEFAULT_DEGRADED_RATIO

    def __post_init__(self) -> None:
        if not self.p99_ms > 0:
            raise ValueError(f"sla p99_ms: must be > 0, got {self.p99_ms}")
        _check_ratio("fail_ratio", self.fail_ratio)
        _check_ratio("degraded_ratio", self.degraded_ratio)

    def describe(self) -> str:
        return (
            f"p99 ≤ {self.p99_ms:g} ms, failures ≤ {self.fail_ratio:.2%}, "
            f"degraded ≤ {self.degraded_ratio:.2%}"
        )


DEFAULT_SLA = Sla()


@dataclass(frozen=True)
class Verdict:
    """``degraded_ratio`` is NaN when the run had no recommendation answers (nothing to judge:
    an events-only mix, the Triton user)."""

    passed: bool
    p99_ms: float
    fail_ratio: float
    degraded_ratio: float
    requests: int
    reasons: tuple[str, ...]

    def describe(self) -> str:
        head = "SLA PASSED" if self.passed else "SLA BROKEN"
        tail = f": {'; '.join(self.reasons)}" if self.reasons else ""
        degraded = "n/a" if math.isnan(self.degraded_ratio) else f"{self.degraded_ratio:.2%}"
        return (
            f"{head} — p99 {self.p99_ms:.1f} ms, failures {self.fail_ratio:.3%}, "
            f"degraded {degraded} over {self.requests:,} requests{tail}"
        )


def judge(
    p99_ms: float, fail_ratio: float, requests: int, sla: Sla, *, degraded_ratio: float
) -> Verdict:
    """The verdict for one run; no requests at all is a failure (nothing was shown). A NaN
    ``degraded_ratio`` (no recommendation answers) leaves that limit out."""
    reasons: list[str] = []
    if requests <= 0:
        reasons.append("no requests were made")
    else:
        if math.isnan(p99_ms) or p99_ms > sla.p99_ms:
            reasons.append(f"p99 {p99_ms:.1f} ms > {sla.p99_ms:g} ms")
        if fail_ratio > sla.fail_ratio:
            reasons.append(f"failure ratio {fail_ratio:.3%} > {sla.fail_ratio:.3%}")
        if degraded_ratio > sla.degraded_ratio:  # False for NaN
            reasons.append(f"degraded share {degraded_ratio:.2%} > {sla.degraded_ratio:.2%}")
    return Verdict(
        not reasons,
        float(p99_ms),
        float(fail_ratio),
        float(degraded_ratio),
        int(requests),
        tuple(reasons),
    )
