"""Canary: run the steps in order (set weight, pause, analysis gate), then promote."""

from __future__ import annotations

from dataclasses import dataclass

from vidrec.rollout.spec import AnalysisStep, CanaryStrategy, Pause, RolloutStatus, SetWeight
from vidrec.rollout.strategies.base import Move, Tick, elapsed, enter_step


@dataclass(frozen=True)
class Canary:
    spec: CanaryStrategy

    @property
    def scale_down_delay_s(self) -> float:
        return self.spec.scale_down_delay_s

    @property
    def promotion_reason(self) -> str:
        return "all steps passed"

    def start(self, status: RolloutStatus, now: float) -> RolloutStatus:
        return enter_step(status.replace(canary_weight=0), 0, now)

    def analysing(self, status: RolloutStatus) -> bool:
        return status.canary_weight > 0

    def advance(self, status: RolloutStatus, tick: Tick) -> tuple[RolloutStatus, Move]:
        steps, resumed = self.spec.steps, tick.resumed
        while status.step_index < len(steps):
            i, step = status.step_index, steps[status.step_index]
            where = f"step {i + 1}/{len(steps)}"
            if isinstance(step, SetWeight):
                status = status.replace(canary_weight=step.weight)
            elif isinstance(step, Pause) and step.duration_s is None:
                if not resumed:
                    msg = f"{where}: paused at {status.canary_weight}% until `resume` or `promote`"
                    return status.replace(message=msg), Move.PAUSE
                resumed = False  # one resume passes one indefinite pause
            elif isinstance(step, Pause) and step.duration_s is not None:
                left = step.duration_s - elapsed(status, tick.now)
                if left > 0:
                    msg = f"{where}: {status.canary_weight}% on the candidate, {left:.0f}s left"
                    return status.replace(message=msg), Move.HOLD
            elif (
                isinstance(step, AnalysisStep)
                and tick.analysis_gated
                and status.passed_checks < step.successes
            ):
                msg = (
                    f"{where}: {status.canary_weight}% on the candidate, waiting for "
                    f"{status.passed_checks}/{step.successes} passing analysis runs"
                )
                return status.replace(message=msg), Move.HOLD
            status = enter_step(status, i + 1, tick.now)
        return status, Move.PROMOTE
