"""The latency SLA gate: p99 and failure ratio of a whole run against their limits.

The Locust ``quitting`` hook calls :func:`judge` with
``environment.stats.total.get_response_time_percentile(0.99)`` and ``fail_ratio`` and sets
the process exit code from the verdict, so a CI job fails when the SLA is broken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_P99_MS = 100.0
DEFAULT_FAIL_RATIO = 0.001  # 0.1 %
EXIT_SLA_BROKEN = 3  # distinct from Locust's own 1 (errors) and 2 (bad arguments)


@dataclass(frozen=True)
class Sla:
    """What a run must achieve: p99 ≤ ``p99_ms`` and failures ≤ ``fail_ratio`` of requests."""

    p99_ms: float = DEFAULT_P99_MS
    fail_ratio: float = DEFAULT_FAIL_RATIO

    def __post_init__(self) -> None:
        if not self.p99_ms > 0:
            raise ValueError(f"sla p99_ms: must be > 0, got {self.p99_ms}")
        if not 0 <= self.fail_ratio <= 1:
            raise ValueError(f"sla fail_ratio: must be within [0, 1], got {self.fail_ratio}")

    def describe(self) -> str:
        return f"p99 ≤ {self.p99_ms:g} ms, failures ≤ {self.fail_ratio:.2%}"


DEFAULT_SLA = Sla()


@dataclass(frozen=True)
class Verdict:
    passed: bool
    p99_ms: float
    fail_ratio: float
    requests: int
    reasons: tuple[str, ...]

    def describe(self) -> str:
        head = "SLA PASSED" if self.passed else "SLA BROKEN"
        tail = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return (
            f"{head} — p99 {self.p99_ms:.1f} ms, failures {self.fail_ratio:.3%} "
            f"over {self.requests:,} requests{tail}"
        )


def judge(p99_ms: float, fail_ratio: float, requests: int, sla: Sla) -> Verdict:
    """The verdict for one run; no requests at all is a failure (nothing was shown)."""
    reasons: list[str] = []
    if requests <= 0:
        reasons.append("no requests were made")
    else:
        if math.isnan(p99_ms) or p99_ms > sla.p99_ms:
            reasons.append(f"p99 {p99_ms:.1f} ms > {sla.p99_ms:g} ms")
        if fail_ratio > sla.fail_ratio:
            reasons.append(f"failure ratio {fail_ratio:.3%} > {sla.fail_ratio:.3%}")
    return Verdict(not reasons, float(p99_ms), float(fail_ratio), int(requests), tuple(reasons))
