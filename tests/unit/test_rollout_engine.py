"""The rollout state machine, canary strategy: every transition as a unit test.

``Sim`` plays the operator: it feeds what the world looks like into ``engine.step``, applies
the actions (weights, loaded models) and keeps the status, so each test reads as a rollout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from vidrec.rollout.analysis import MetricResult, Verdict
from vidrec.rollout.engine import (
    Action,
    Decision,
    LoadCandidate,
    Notify,
    Observed,
    SetWeights,
    UnloadCandidate,
    UnloadStable,
    analysis_due,
    step,
)
from vidrec.rollout.spec import Phase, RolloutSpec, RolloutStatus

T0 = 1_700_000_000.0


def canary_spec(**overrides: Any) -> RolloutSpec:
    raw: dict[str, Any] = {
        "model": "ranker",
        "stableVersion": "3",
        "candidateVersion": "4",
        "strategy": {
            "canary": {
                "steps": [
                    {"setWeight": 10},
                    {"pause": {"duration": "2m"}},
                    {"analysis": {"successes": 2}},
                    {"setWeight": 50},
                    {"pause": {}},
                ],
                "scaleDownDelaySeconds": 30,
            }
        },
        "analysis": {
            "interval": "1m",
            "failureLimit": 2,
            "inconclusiveLimit": 2,
            "metrics": [{"name": "latency", "template": "latency-p99-ratio"}],
        },
        "progressDeadlineSeconds": 300,
    }
    raw.update(overrides)
    return RolloutSpec.from_dict(raw)


def result(verdict: Verdict, value: float | None = 1.0) -> tuple[MetricResult, ...]:
    reason = f"latency = {value}, {verdict.value.lower()} max 1.2"
    return (MetricResult("latency", value, verdict, reason),)


PASS, FAIL, NODATA = (
    result(Verdict.PASS),
    result(Verdict.FAIL, 1.8),
    result(Verdict.INCONCLUSIVE, None),
)


@dataclass
class Sim:
    spec: RolloutSpec
    status: RolloutStatus = field(default_factory=RolloutStatus)
    weights: tuple[int, int] = (100, 0)
    loaded: set[str] = field(default_factory=lambda: {"3"})
    ready_after_loads: int = 1  # ticks between LoadCandidate and the candidate being ready
    loads_seen: int = 0
    now: float = T0
    log: list[Action] = field(default_factory=list)

    def tick(
        self, dt: float = 0.0, results: tuple[MetricResult, ...] = (), command: str | None = None
    ) -> Decision:
        self.now += dt
        due = analysis_due(self.spec, self.status, self.now)
        ready = self.spec.candidate_version in self.loaded
        observed = Observed(self.weights, results if due else (), ready, command)
        decision = step(self.spec, self.status, observed, self.now)
        for action in decision.actions:
            if isinstance(action, SetWeights):
                self.weights = (action.stable, action.candidate)
            elif isinstance(action, LoadCandidate):
                self.loads_seen += 1
                if self.loads_seen >= self.ready_after_loads:
                    self.loaded.add(action.version)
            elif isinstance(action, UnloadStable | UnloadCandidate):
                self.loaded.discard(action.version)
        self.log.extend(decision.actions)
        self.status = decision.status
        return decision

    @property
    def phase(self) -> Phase:
        return self.status.phase

    def notes(self) -> list[str]:
        return [a.reason for a in self.log if isinstance(a, Notify)]


def started(spec: RolloutSpec | None = None) -> Sim:
    """A canary whose candidate is loaded and at its first weight (10 %)."""
    sim = Sim(spec or canary_spec())
    sim.tick()  # Pending -> Progressing, load requested
    sim.tick(5)  # ready -> step 1 sets 10 %
    assert (sim.phase, sim.weights) == (Phase.PROGRESSING, (90, 10))
    return sim


def test_candidate_is_loaded_before_any_traffic_moves() -> None:
    sim = Sim(canary_spec(), ready_after_loads=3)
    first = sim.tick()
    assert sim.phase is Phase.PROGRESSING
    assert LoadCandidate("ranker", "4") in first.actions
    assert Notify("Progressing", "Loading candidate ranker:4") in first.actions
    assert not any(isinstance(a, SetWeights) for a in first.actions)  # already 100/0
    sim.tick(5)
    assert sim.weights == (100, 0)
    assert "Waiting for candidate ranker:4" in sim.status.message
    sim.tick(5)  # third load request -> ready next tick
    assert sim.weights == (100, 0)
    sim.tick(5)
    assert sim.weights == (90, 10) and sim.status.canary_weight == 10
    assert sim.notes() == ["Progressing", "CandidateLoaded", "WeightChanged"]


def test_candidate_never_ready_fails_after_the_progress_deadline() -> None:
    sim = Sim(canary_spec(), ready_after_loads=10**6)
    sim.tick()
    sim.tick(299)
    assert sim.phase is Phase.PROGRESSING
    d = sim.tick(2)
    assert sim.phase is Phase.FAILED
    assert "not ready after 301s" in sim.status.message
    assert UnloadCandidate("ranker", "4") in d.actions
    assert any(isinstance(a, Notify) and a.warning and a.reason == "Failed" for a in d.actions)


def test_canary_promotes_through_every_step_and_unloads_the_old_stable() -> None:
    sim = started()
    sim.tick(60, PASS)  # pause 2m not over; analysis at 10 % counted for history only
    assert sim.status.step_index == 1 and "60s left" in sim.status.message
    sim.tick(60, PASS)  # pause over -> analysis gate (needs 2 fresh passes)
    assert sim.status.step_index == 2 and sim.status.passed_checks == 0
    sim.tick(60, PASS)
    assert sim.status.step_index == 2 and "1/2 passing" in sim.status.message
    sim.tick(60, PASS)  # second pass -> setWeight 50 -> indefinite pause
    assert (sim.phase, sim.weights, sim.status.step_index) == (Phase.PAUSED, (50, 50), 4)
    assert sim.status.pause_reason == "step"
    sim.tick(60, command="resume")  # passes the pause -> last step -> Promoting
    assert (sim.phase, sim.weights) == (Phase.PROMOTING, (0, 100))
    assert "3" in sim.loaded
    sim.tick(29)
    assert sim.phase is Phase.PROMOTING and "3" in sim.loaded
    d = sim.tick(1)
    assert sim.phase is Phase.SUCCEEDED and sim.loaded == {"4"}
    assert UnloadStable("ranker", "3") in d.actions
    assert sim.status.conditions[0].status == "True"
    assert [n for n in sim.notes() if n != "WeightChanged"] == [
        "Progressing", "CandidateLoaded", "Paused", "Progressing", "Promoting", "Succeeded",
    ]  # fmt: skip
    assert [r.verdict for r in sim.status.history] == [Verdict.PASS] * 4


def test_failure_limit_rolls_back_naming_metric_value_and_threshold() -> None:
    sim = started()
    sim.tick(60, FAIL)
    assert sim.phase is Phase.PROGRESSING and sim.status.failed_checks == 1
    d = sim.tick(60, FAIL)
    assert sim.phase is Phase.ROLLED_BACK
    assert sim.weights == (100, 0) and sim.status.canary_weight == 0
    assert "4" not in sim.loaded and UnloadCandidate("ranker", "4") in d.actions
    msg = sim.status.message
    assert "latency = 1.8" in msg and "max 1.2" in msg and "2 failed checks, limit 2" in msg
    assert "stable ranker:3" in msg
    notify = next(a for a in d.actions if isinstance(a, Notify))
    assert (notify.reason, notify.warning, notify.message) == ("RolledBack", True, msg)
    assert sim.status.conditions[0].status == "False"


def test_a_pass_between_failures_does_not_reset_the_failure_count() -> None:
    sim = started()
    sim.tick(60, FAIL)
    sim.tick(60, PASS)
    sim.tick(60, FAIL)
    assert sim.phase is Phase.ROLLED_BACK


def test_inconclusive_pauses_and_never_promotes() -> None:
    sim = started()
    sim.tick(60, NODATA)
    assert sim.phase is Phase.PROGRESSING and sim.status.inconclusive_checks == 1
    d = sim.tick(60, NODATA)
    assert sim.phase is Phase.PAUSED and sim.status.pause_reason == "inconclusive"
    assert "inconclusive 2 times" in sim.status.message and "`resume`" in sim.status.message
    assert any(isinstance(a, Notify) and a.warning for a in d.actions)
    for _ in range(10):  # time passes, more no-data: it stays paused at 10 %
        sim.tick(600, NODATA)
    assert (sim.phase, sim.weights, sim.status.step_index) == (Phase.PAUSED, (90, 10), 1)


def test_a_pass_resets_the_inconclusive_streak() -> None:
    sim = started()
    sim.tick(60, NODATA)
    sim.tick(60, PASS)
    sim.tick(60, NODATA)
    assert sim.phase is Phase.PROGRESSING and sim.status.inconclusive_checks == 1


def test_resume_after_inconclusive_pause_continues_with_a_fresh_streak() -> None:
    sim = started()
    sim.tick(60, NODATA)
    sim.tick(60, NODATA)
    sim.tick(60, command="resume")
    assert sim.phase is Phase.PROGRESSING and sim.status.inconclusive_checks == 0
    sim.tick(60, PASS)
    sim.tick(60, PASS)
    assert sim.status.step_index == 4  # the analysis gate passed, then weight 50


def test_abort_during_pause_rolls_back_at_once() -> None:
    sim = started()
    sim.tick(10, command="pause")
    assert sim.phase is Phase.PAUSED and sim.status.pause_reason == "manual"
    assert sim.weights == (90, 10)  # pausing holds the weight
    d = sim.tick(1, command="abort")
    assert sim.phase is Phase.ROLLED_BACK and sim.weights == (100, 0)
    assert "aborted by `vidrec rollout abort`" in sim.status.message
    assert [type(a) for a in d.actions] == [Notify, UnloadCandidate, SetWeights]


@pytest.mark.parametrize("ticks", [0, 1, 3])
def test_abort_from_any_live_phase(ticks: int) -> None:
    sim = Sim(canary_spec())
    for _ in range(ticks):
        sim.tick(5)
    sim.tick(1, command="abort")
    assert sim.phase is Phase.ROLLED_BACK and sim.weights == (100, 0)


def test_manual_pause_holds_and_resume_continues_where_it_was() -> None:
    sim = started()
    sim.tick(30, command="pause")
    sim.tick(600)  # the 2m pause step would have elapsed long ago
    assert sim.phase is Phase.PAUSED and sim.status.step_index == 1
    sim.tick(1, command="resume")
    assert sim.phase is Phase.PROGRESSING and sim.status.step_index == 2  # pause now elapsed


def test_manual_resume_does_not_skip_an_indefinite_step_it_did_not_pause_at() -> None:
    sim = started()
    sim.tick(10, command="pause")
    sim.tick(10, command="resume")
    assert sim.status.step_index == 1  # a timed pause; resuming a manual pause skips nothing


def test_spec_paused_holds_until_cleared() -> None:
    sim = started()
    sim.spec = canary_spec(paused=True)
    sim.tick(10)
    assert sim.phase is Phase.PAUSED and sim.status.pause_reason == "spec"
    sim.tick(10, command="resume")
    assert sim.phase is Phase.PAUSED and "spec.paused is true" in sim.status.message
    sim.spec = canary_spec()
    sim.tick(10)
    assert sim.phase is Phase.PROGRESSING


def test_manual_promote_skips_the_remaining_steps() -> None:
    sim = started()
    sim.tick(1, command="promote")
    assert (sim.phase, sim.weights) == (Phase.PROMOTING, (0, 100))
    assert "promoted by `vidrec rollout promote`" in sim.status.message


def test_promote_from_an_inconclusive_pause_is_a_persons_call() -> None:
    sim = started()
    sim.tick(60, NODATA)
    sim.tick(60, NODATA)
    sim.tick(1, command="promote")
    assert sim.phase is Phase.PROMOTING


def test_analysis_waits_a_full_interval_at_each_new_weight() -> None:
    sim = started()
    assert not analysis_due(sim.spec, sim.status, sim.now + 59)
    assert analysis_due(sim.spec, sim.status, sim.now + 60)
    sim.tick(30, FAIL)  # not due: ignored
    assert sim.status.failed_checks == 0 and sim.status.history == ()


def test_no_analysis_before_any_traffic_reaches_the_candidate() -> None:
    spec = canary_spec(
        strategy={"canary": {"steps": [{"pause": {"duration": "5m"}}, {"setWeight": 20}]}}
    )
    sim = Sim(spec)
    sim.tick()
    sim.tick(5)
    assert sim.weights == (100, 0)
    assert not analysis_due(sim.spec, sim.status, sim.now + 3600)


def test_without_metrics_analysis_gates_pass() -> None:
    spec = canary_spec(
        strategy={"canary": {"steps": [{"setWeight": 20}, {"analysis": {}}]}}, analysis={}
    )
    sim = Sim(spec)
    sim.tick()
    sim.tick(5)
    assert sim.phase is Phase.PROMOTING


def test_restepping_with_the_same_inputs_changes_nothing() -> None:
    sim = started()
    sim.tick(60, PASS)
    observed = Observed(sim.weights, PASS, True, None)
    first = step(sim.spec, sim.status, observed, sim.now)
    again = step(sim.spec, sim.status, observed, sim.now)
    assert first == again  # pure: same inputs, same decision
    settled = step(sim.spec, first.status, observed, sim.now)
    assert settled.status == first.status  # a re-run tick moves no counters or steps
    assert not any(isinstance(a, Notify | SetWeights) for a in settled.actions)


def test_weights_are_resent_when_the_router_drifted() -> None:
    sim = started()
    sim.weights = (100, 0)  # someone reset the route
    d = sim.tick(1)
    assert SetWeights(90, 10) in d.actions and sim.weights == (90, 10)


def test_terminal_phases_do_nothing_more() -> None:
    sim = started()
    sim.tick(1, command="abort")
    before = sim.status
    d = sim.tick(60, FAIL, command="promote")
    assert d.actions == () and d.status == before


def test_unknown_command_changes_nothing() -> None:
    sim = started()
    d = sim.tick(0, command="explode")
    assert sim.phase is Phase.PROGRESSING and d.actions == ()


def test_history_is_capped() -> None:
    spec = canary_spec(
        strategy={"canary": {"steps": [{"setWeight": 10}, {"pause": {"duration": "1h"}}]}},
        analysis={"interval": "1s", "metrics": [{"name": "latency", "template": "latency-p99"}]},
    )
    sim = started(spec)
    for _ in range(80):
        sim.tick(1, PASS)
    assert len(sim.status.history) == 50 and sim.status.history[-1].at == sim.now
