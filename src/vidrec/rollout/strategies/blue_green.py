"""Blue-green: the candidate runs beside stable in preview (with ``preview_weight`` of the
users), passes the pre-promotion analysis, then takes all traffic at once.

The preview's users are the only source of candidate-variant metrics: with
``preview_weight`` 0 only checks that need no live traffic (a webhook load test against the
preview) can pass; metric templates comparing the variants stay INCONCLUSIVE and pause. The
engine starts the first analysis window when the preview weight is set, and keeps analysing
until promotion, so a failure at any point of the preview rolls back to 100/0."""

from __future__ import annotations

from dataclasses import dataclass

from vidrec.rollout.spec import BlueGreenStrategy, RolloutStatus
from vidrec.rollout.strategies.base import Move, Tick, elapsed, enter_step


@dataclass(frozen=True)
class BlueGreen:
    spec: BlueGreenStrategy

    @property
    def scale_down_delay_s(self) -> float:
        return self.spec.scale_down_delay_s

    @property
    def promotion_reason(self) -> str:
        gate = "analysis passed, " if self.spec.pre_promotion_analysis else ""
        return f"preview {gate}auto-promotion time reached"

    def start(self, status: RolloutStatus, now: float) -> RolloutStatus:
        return enter_step(status.replace(canary_weight=self.spec.preview_weight), 0, now)

    def analysing(self, status: RolloutStatus) -> bool:
        return self.spec.pre_promotion_analysis

    def advance(self, status: RolloutStatus, tick: Tick) -> tuple[RolloutStatus, Move]:
        s = self.spec
        preview = f"preview: candidate loaded, {status.canary_weight}% of users on it"
        gated = s.pre_promotion_analysis and tick.analysis_gated
        if gated and status.passed_checks < 1:
            dark = "" if status.canary_weight else " (no users on it: only traffic-free checks)"
            return status.replace(
                message=f"{preview}; waiting for pre-promotion analysis{dark}"
            ), Move.HOLD
        if s.auto_promotion_s is None:
            return status.replace(message=f"{preview}; run `promote` to switch"), Move.HOLD
        left = s.auto_promotion_s - elapsed(status, tick.now)
        if left > 0:
            return status.replace(message=f"{preview}; auto-promotion in {left:.0f}s"), Move.HOLD
        return enter_step(status, 1, tick.now), Move.PROMOTE
