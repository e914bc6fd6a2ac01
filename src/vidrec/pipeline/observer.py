"""What the runner reports about each stage; metrics and logs are adapters of this protocol.

Stages never report anything themselves (product-mixer's executor observer): the runner calls
the observer with the surface, the stage id ``"<kind>/<name>"`` and the variant, so a small
stage gets latency, sizes and degradations for free. ``outcome`` is ``"ok"``, a
:class:`~vidrec.pipeline.base.DependencyError` reason, or ``"bug"``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

Direction = Literal["in", "out", "removed"]


class PipelineObserver(Protocol):
    def stage(
        self, surface: str, stage_id: str, variant: str, seconds: float, outcome: str
    ) -> None: ...

    def candidates(self, surface: str, stage_id: str, direction: Direction, n: int) -> None: ...

    def degraded(self, surface: str, stage_id: str, reason: str) -> None: ...

    def scores(self, surface: str, variant: str, head_scores: np.ndarray) -> None: ...


class NullObserver:
    """Reports nowhere (benchmarks of the pipeline alone, scripts)."""

    def stage(
        self, surface: str, stage_id: str, variant: str, seconds: float, outcome: str
    ) -> None:
        pass

    def candidates(self, surface: str, stage_id: str, direction: Direction, n: int) -> None:
        pass

    def degraded(self, surface: str, stage_id: str, reason: str) -> None:
        pass

    def scores(self, surface: str, variant: str, head_scores: np.ndarray) -> None:
        pass


@dataclass(frozen=True)
class StageRecord:
    surface: str
    stage_id: str
    variant: str
    seconds: float
    outcome: str


@dataclass
class RecordingObserver:
    """Keeps every report in memory: tests, and the bench's per-stage latency breakdown."""

    stages: list[StageRecord] = field(default_factory=list)
    counts: list[tuple[str, str, Direction, int]] = field(default_factory=list)
    degradations: list[tuple[str, str, str]] = field(default_factory=list)
    head_scores: list[tuple[str, str, np.ndarray]] = field(default_factory=list)

    def stage(
        self, surface: str, stage_id: str, variant: str, seconds: float, outcome: str
    ) -> None:
        self.stages.append(StageRecord(surface, stage_id, variant, seconds, outcome))

    def candidates(self, surface: str, stage_id: str, direction: Direction, n: int) -> None:
        self.counts.append((surface, stage_id, direction, n))

    def degraded(self, surface: str, stage_id: str, reason: str) -> None:
        self.degradations.append((surface, stage_id, reason))

    def scores(self, surface: str, variant: str, head_scores: np.ndarray) -> None:
        self.head_scores.append((surface, variant, head_scores))

    def outcomes(self, stage_id: str) -> list[str]:
        return [r.outcome for r in self.stages if r.stage_id == stage_id]

    def count(self, stage_id: str, direction: Direction) -> int:
        return sum(n for _, s, d, n in self.counts if s == stage_id and d == direction)

    def breakdown(self) -> dict[str, list[float]]:
        """Seconds per stage id, in call order (the bench turns these into percentiles)."""
        out: dict[str, list[float]] = defaultdict(list)
        for r in self.stages:
            out[r.stage_id].append(r.seconds)
        return dict(out)
