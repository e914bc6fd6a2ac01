"""The rollout state machine: ``step(spec, status, observed, now) -> Decision``. Pure.

The operator reads the world into :class:`Observed` (weights read back from the router,
the analysis results it fetched when :func:`analysis_due`, whether the candidate is loaded,
a person's command), calls :func:`step`, applies every action in order, and only then
writes ``decision.status``. If an action fails it writes nothing: the next tick computes
the same decision again (same inputs → same decision; weights are absolute and loads are
"ensure loaded"). Every phase change emits a :class:`Notify` (→ Kubernetes Event, metric,
notifier post).

Rules, after Flagger, except that no data never counts as a failure:

- Pending → Progressing: load the candidate; no traffic moves until it is ready. Not ready
  within ``progress_deadline_s`` → Failed.
- A FAIL run adds a failed check; ``failure_limit`` of them → RolledBack (all traffic to
  stable, candidate unloaded), the message names the metric, value and threshold.
- ``inconclusive_limit`` INCONCLUSIVE runs in a row → Paused; only a person resumes.
- Commands: ``abort`` → RolledBack at once (from any live phase, Paused included);
  ``promote`` → Promoting (skips remaining steps and gates: a person's call); ``pause`` →
  Paused; ``resume`` → Progressing (and passes an indefinite pause step).
  ``spec.paused: true`` holds the rollout Paused until it is false again.
- Promoting: all traffic on the candidate; after the scale-down delay the old stable is
  unloaded → Succeeded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from vidrec.rollout.analysis import MetricResult, Verdict
from vidrec.rollout.spec import (
    HISTORY_LIMIT,
    AnalysisRecord,
    Phase,
    RolloutSpec,
    RolloutStatus,
    conditions_for,
)
from vidrec.rollout.strategies import Move, Strategy, Tick, strategy_for


class Command(enum.StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"


class PauseReason(enum.StrEnum):
    STEP = "step"  # an indefinite pause step
    MANUAL = "manual"  # `vidrec rollout pause`
    SPEC = "spec"  # spec.paused is true
    INCONCLUSIVE = "inconclusive"  # analysis had no usable data too often


@dataclass(frozen=True)
class Observed:
    weights: tuple[int, int] | None = None  # (stable, candidate) read back; None: unknown
    results: tuple[MetricResult, ...] = ()  # one analysis run, when analysis_due said so
    candidate_ready: bool = False
    command: str | None = None  # "promote" | "abort" | "pause" | "resume"


@dataclass(frozen=True)
class LoadCandidate:
    model: str
    version: str


@dataclass(frozen=True)
class SetWeights:
    stable: int
    candidate: int


@dataclass(frozen=True)
class UnloadStable:
    model: str
    version: str


@dataclass(frozen=True)
class UnloadCandidate:
    model: str
    version: str


@dataclass(frozen=True)
class Notify:
    reason: str  # CamelCase Event reason: the new phase, or "CandidateLoaded"
    message: str
    warning: bool = False  # Event type Warning (rollback, failure, inconclusive pause)


Action = LoadCandidate | SetWeights | UnloadStable | UnloadCandidate | Notify


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    actions: tuple[Action, ...] = field(default=())


def analysis_due(spec: RolloutSpec, status: RolloutStatus, now: float) -> bool:
    """Whether the operator should query the metrics before calling :func:`step` now."""
    return (
        status.phase is Phase.PROGRESSING
        and bool(spec.analysis.metrics)
        and status.loaded_at is not None
        and strategy_for(spec.strategy).analysing(status)
        and (
            status.last_analysis_at is None
            or now - status.last_analysis_at >= spec.analysis.interval_s
        )
    )


def step(spec: RolloutSpec, status: RolloutStatus, observed: Observed, now: float) -> Decision:
    """The next status and the actions that get the world there."""
    return _Tick(spec, observed, now).run(status)


class _Tick:
    """One evaluation; collects actions while the status moves through phases."""

    def __init__(self, spec: RolloutSpec, observed: Observed, now: float) -> None:
        self.spec, self.observed, self.now = spec, observed, now
        self.strategy: Strategy = strategy_for(spec.strategy)
        self.actions: list[Action] = []

    # --- driver ----------------------------------------------------------------------------
    def run(self, status: RolloutStatus) -> Decision:
        status = self._advance(status)
        conditions = conditions_for(status.phase, status.conditions, self.now)
        return Decision(status.replace(conditions=conditions), tuple(self.actions))

    def _advance(self, s: RolloutStatus) -> RolloutStatus:
        command = self._command(s)
        if s.phase.terminal:
            return s  # its actions were applied on the way in; the router may have finalised
        if command is Command.ABORT:
            who = "aborted by `vidrec rollout abort`"
            return self._roll_back(s, f"Rolled back: {who}. {self._on_stable()}")
        if s.phase is Phase.PENDING:
            s = self._to(s, Phase.PROGRESSING, f"Loading candidate {self._candidate()}",
                         started_at=self.now, step_started_at=self.now)  # fmt: skip
        if s.phase is Phase.PROMOTING:
            return self._promoting(s)
        if command is Command.PROMOTE:
            return self._promote(s, "promoted by `vidrec rollout promote`")
        if s.phase is Phase.PAUSED:
            s, resumed = self._paused(s, command)
            if s.phase is Phase.PAUSED:
                return self._hold_weights(s, *self._weights(s))
        else:
            resumed = False
            if command is Command.PAUSE or self.spec.paused:
                reason = PauseReason.MANUAL if command is Command.PAUSE else PauseReason.SPEC
                msg = f"Paused ({reason.value}) at {s.canary_weight}%: `resume` to continue"
                return self._hold_weights(self._pause(s, reason, msg), *self._weights(s))
        return self._progressing(s, resumed)

    def _command(self, s: RolloutStatus) -> Command | None:
        raw = self.observed.command
        if raw is None:
            return None
        try:
            return Command(raw.strip().lower())
        except ValueError:
            return None  # the operator validates annotations; an unknown one changes nothing

    # --- phases ----------------------------------------------------------------------------
    def _progressing(self, s: RolloutStatus, resumed: bool) -> RolloutStatus:
        if not self.observed.candidate_ready:
            return self._wait_for_candidate(s)
        before = s.canary_weight  # taken before start: a blue-green preview moves weight there
        if s.loaded_at is None:
            s = self.strategy.start(s.replace(loaded_at=self.now), self.now)
            self._notify("CandidateLoaded", f"Candidate {self._candidate()} is ready")
        s = self._analyse(s)
        if (limit := self.spec.analysis.failure_limit) <= s.failed_checks:
            return self._roll_back(s, self._failure_message(s, limit))
        if (limit := self.spec.analysis.inconclusive_limit) <= s.inconclusive_checks:
            last = "; ".join(r.reason for r in self._latest(s) if r.verdict is Verdict.INCONCLUSIVE)
            msg = (f"Paused: analysis inconclusive {s.inconclusive_checks} times in a row "
                   f"({last}). Check the metrics and traffic, then `resume`.")  # fmt: skip
            paused = self._pause(s, PauseReason.INCONCLUSIVE, msg, warning=True)
            return self._hold_weights(paused, *self._weights(paused))
        tick = Tick(self.now, resumed, analysis_gated=bool(self.spec.analysis.metrics))
        s, move = self.strategy.advance(s, tick)
        if s.canary_weight != before:  # a fresh analysis window at the new weight
            s = s.replace(last_analysis_at=self.now)
            self._notify("WeightChanged", f"Candidate weight {before}% → {s.canary_weight}%")
        if move is Move.PROMOTE:
            return self._promote(s, self.strategy.promotion_reason)
        if move is Move.PAUSE:
            s = self._pause(s, PauseReason.STEP, s.message)
        return self._hold_weights(s, *self._weights(s))

    def _wait_for_candidate(self, s: RolloutStatus) -> RolloutStatus:
        started = s.started_at if s.started_at is not None else self.now
        waited = self.now - started
        if s.loaded_at is None and waited > self.spec.progress_deadline_s:
            msg = (f"Failed: candidate {self._candidate()} not ready after {waited:.0f}s "
                   f"(progressDeadlineSeconds {self.spec.progress_deadline_s:g}); check Triton's "
                   f"model load logs. {self._on_stable()}")  # fmt: skip
            s = self._to(s.replace(canary_weight=0), Phase.FAILED, msg, warning=True)
            self._unload_candidate()
            return self._hold_weights(s, 100, 0)
        self.actions.append(LoadCandidate(self.spec.model, self.spec.candidate_version))
        msg = f"Waiting for candidate {self._candidate()} to load ({waited:.0f}s); no traffic moved"
        return self._hold_weights(s.replace(message=msg), 100, 0)

    def _paused(self, s: RolloutStatus, command: Command | None) -> tuple[RolloutStatus, bool]:
        """Leave the pause on a person's resume, or when spec.paused is cleared after a spec
        pause; the flag says an indefinite pause step is thereby done."""
        spec_cleared = s.pause_reason == PauseReason.SPEC and not self.spec.paused
        if not (command is Command.RESUME or spec_cleared):
            return s, False
        if self.spec.paused:
            return s.replace(
                message="Paused: spec.paused is true; set it to false to resume"
            ), False
        resumed_step = s.pause_reason == PauseReason.STEP
        s = self._to(s, Phase.PROGRESSING, "Resumed", pause_reason=None, inconclusive_checks=0)
        return s, resumed_step

    def _promote(self, s: RolloutStatus, why: str) -> RolloutStatus:
        msg = (
            f"Promoting candidate {self._candidate()} ({why}): all traffic on it; stable "
            f"{self.spec.stable_version} unloads after {self.strategy.scale_down_delay_s:g}s"
        )
        s = self._to(s, Phase.PROMOTING, msg, canary_weight=100, step_started_at=self.now,
                     pause_reason=None)  # fmt: skip
        return self._hold_weights(s, 0, 100)

    def _promoting(self, s: RolloutStatus) -> RolloutStatus:
        s = self._hold_weights(s, 0, 100)
        switched = self.observed.weights in (None, (0, 100))
        since = self.now - (s.step_started_at if s.step_started_at is not None else self.now)
        if not switched or since < self.strategy.scale_down_delay_s:
            return s
        self.actions.append(UnloadStable(self.spec.model, self.spec.stable_version))
        msg = (
            f"Succeeded: candidate {self._candidate()} serves all traffic; old stable "
            f"{self.spec.stable_version} unloaded"
        )
        return self._to(s, Phase.SUCCEEDED, msg)

    def _roll_back(self, s: RolloutStatus, message: str) -> RolloutStatus:
        s = self._to(s.replace(canary_weight=0), Phase.ROLLED_BACK, message, warning=True,
                     pause_reason=None)  # fmt: skip
        self._unload_candidate()
        return self._hold_weights(s, 100, 0)

    # --- analysis --------------------------------------------------------------------------
    def _analyse(self, s: RolloutStatus) -> RolloutStatus:
        """Fold one analysis run into the counters, if one was due and taken."""
        results = self.observed.results
        if not results or not analysis_due(self.spec, s, self.now):
            return s
        verdicts = {r.verdict for r in results}
        history = (*s.history, *(AnalysisRecord(r.metric, r.value, r.verdict, self.now, r.reason)
                                 for r in results))[-HISTORY_LIMIT:]  # fmt: skip
        s = s.replace(last_analysis_at=self.now, history=history)
        if Verdict.FAIL in verdicts:
            return s.replace(failed_checks=s.failed_checks + 1, passed_checks=0)
        if Verdict.INCONCLUSIVE in verdicts:
            return s.replace(inconclusive_checks=s.inconclusive_checks + 1, passed_checks=0)
        return s.replace(inconclusive_checks=0, passed_checks=s.passed_checks + 1)

    def _latest(self, s: RolloutStatus) -> list[AnalysisRecord]:
        return [r for r in s.history if r.at == s.last_analysis_at]

    def _failure_message(self, s: RolloutStatus, limit: int) -> str:
        failed = "; ".join(r.reason for r in self._latest(s) if r.verdict is Verdict.FAIL)
        return (f"Rolled back: {failed} ({s.failed_checks} failed checks, limit {limit}). "
                f"{self._on_stable()}")  # fmt: skip

    # --- helpers ---------------------------------------------------------------------------
    def _to(self, s: RolloutStatus, phase: Phase, message: str, warning: bool = False,
            **changes: object) -> RolloutStatus:  # fmt: skip
        """Enter ``phase`` (a no-op transition emits nothing)."""
        if s.phase is not phase:
            self._notify(phase.value, message, warning)
        return s.replace(phase=phase, message=message, **changes)

    def _pause(self, s: RolloutStatus, reason: PauseReason, message: str,
               warning: bool = False) -> RolloutStatus:  # fmt: skip
        return self._to(s, Phase.PAUSED, message, warning, pause_reason=reason.value)

    def _notify(self, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(Notify(reason, message, warning))

    def _hold_weights(self, s: RolloutStatus, stable: int, candidate: int) -> RolloutStatus:
        """Ensure the router has these weights (absolute; re-sent only when they differ)."""
        if self.observed.weights != (stable, candidate):
            self.actions.append(SetWeights(stable, candidate))
        return s

    def _weights(self, s: RolloutStatus) -> tuple[int, int]:
        weight = s.canary_weight if self.observed.candidate_ready else 0
        return 100 - weight, weight

    def _unload_candidate(self) -> None:
        self.actions.append(UnloadCandidate(self.spec.model, self.spec.candidate_version))

    def _candidate(self) -> str:
        return f"{self.spec.model}:{self.spec.candidate_version}"

    def _on_stable(self) -> str:
        return f"All traffic is on stable {self.spec.model}:{self.spec.stable_version}."
