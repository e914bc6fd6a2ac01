"""ModelRollout spec parsing (errors name the field), status round trip, Promoted condition."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vidrec.rollout.analysis import Verdict
from vidrec.rollout.spec import (
    AnalysisRecord,
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStrategy,
    Pause,
    Phase,
    RolloutSpec,
    RolloutStatus,
    SetWeight,
    SpecError,
    conditions_for,
    parse_duration,
)

BASE: dict[str, Any] = {
    "model": "ranker",
    "stableVersion": 3,
    "candidateVersion": "4",
    "strategy": {
        "canary": {
            "steps": [
                {"setWeight": 10},
                {"pause": {"duration": "5m"}},
                {"analysis": {}},
                {"pause": {}},
            ]
        }
    },
    "analysis": {
        "interval": "30s",
        "metrics": [
            {"name": "latency", "template": "latency-p99-ratio"},
            {"name": "ctr", "template": "ctr-test", "minSamples": 50},
            {"name": "raw", "query": "up", "thresholdMin": 1},
        ],
    },
}


def with_(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node: Any = raw
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return raw


def test_parses_a_canary_with_defaults() -> None:
    spec = RolloutSpec.from_dict(BASE)
    assert (spec.stable_version, spec.candidate_version, spec.sticky, spec.paused) == (
        "3",
        "4",
        True,
        False,
    )
    assert spec.strategy == CanaryStrategy(
        (SetWeight(10), Pause(300.0), AnalysisStep(1), Pause(None)), scale_down_delay_s=30.0
    )
    latency, ctr, raw = spec.analysis.metrics
    assert (latency.threshold_max, latency.threshold_min) == (1.2, None)  # template default
    assert (ctr.threshold_min, ctr.min_samples) == (0.05, 50)
    assert (raw.query, raw.threshold_min, raw.provider) == ("up", 1.0, "prometheus")
    assert spec.analysis.interval_s == 30.0 and spec.traffic_router.type == "gateway-table"


def test_parses_blue_green() -> None:
    raw = with_("strategy", {"blueGreen": {"previewWeight": 10, "autoPromotionSeconds": "10m"}})
    assert RolloutSpec.from_dict(raw).strategy == BlueGreenStrategy(10, 600.0, True, 30.0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            with_("strategy.canary.steps.2", {"setWeight": 101}),
            "spec.strategy.canary.steps[2].setWeight",
        ),
        (
            with_("strategy.canary.steps.0", {"setWeight": True}),
            "spec.strategy.canary.steps[0].setWeight",
        ),
        (
            with_("strategy.canary.steps.1", {"pause": {"duration": "5 minutes"}}),
            "spec.strategy.canary.steps[1].pause.duration",
        ),
        (with_("strategy.canary.steps.1", {"wait": 3}), "spec.strategy.canary.steps[1].wait"),
        (
            with_("strategy.canary.steps.0", {"setWeight": 5, "pause": {}}),
            "spec.strategy.canary.steps[0]",
        ),
        (with_("strategy.canary.steps", []), "spec.strategy.canary.steps"),
        (with_("strategy", {}), "spec.strategy"),
        (
            with_("strategy", {"blueGreen": {"previewWeight": 100}}),
            "spec.strategy.blueGreen.previewWeight",
        ),
        (with_("analysis.interval", "0s"), "spec.analysis.interval"),
        (with_("analysis.failureLimit", 0), "spec.analysis.failureLimit"),
        (with_("analysis.metrics.0.template", "nope"), "spec.analysis.metrics[0].template"),
        (with_("analysis.metrics.2.query", ""), "spec.analysis.metrics[2].query"),
        (with_("analysis.metrics.2.thresholdMin", "high"), "spec.analysis.metrics[2].thresholdMin"),
        (with_("analysis.metrics.1.name", "latency"), "spec.analysis.metrics[1].name"),
        (with_("analysis.metrics.0.query", "up"), "spec.analysis.metrics[0]"),
        (with_("analysis.metrics.2", {"name": "x", "query": "up"}), "spec.analysis.metrics[2]"),
        (with_("candidateVersion", "v4"), "spec.candidateVersion"),
        (with_("candidateVersion", "3"), "spec.candidateVersion"),
        (with_("model", "Ranker!"), "spec.model"),
        (with_("sticky", "yes"), "spec.sticky"),
        (
            with_("trafficRouter", {"type": "gateway-table", "weights": 1}),
            "spec.trafficRouter.weights",
        ),
        (with_("colour", "blue"), "spec.colour"),
    ],
)
def test_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        RolloutSpec.from_dict(raw)
    assert err.value.field_path == field
    assert str(err.value).startswith(f"{field}: ")


def test_weight_error_message_reads_well() -> None:
    with pytest.raises(SpecError, match=r"steps\[2\]\.setWeight: must be an integer 0\.\.100"):
        RolloutSpec.from_dict(with_("strategy.canary.steps.2", {"setWeight": 101}))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("1.5m", 90.0),
        ("45", 45.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("bad", ["-1s", "5 minutes", "1d", True, None, -3])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(SpecError, match=r"^x: "):
        parse_duration(bad, "x")


def test_status_round_trips_through_the_cr_dict() -> None:
    now = 1_700_000_000.5
    status = RolloutStatus(
        phase=Phase.PAUSED,
        step_index=3,
        canary_weight=25,
        failed_checks=1,
        inconclusive_checks=2,
        passed_checks=0,
        started_at=now - 100,
        loaded_at=now - 90,
        step_started_at=now - 10,
        last_analysis_at=now,
        pause_reason="inconclusive",
        history=(
            AnalysisRecord("ctr", None, Verdict.INCONCLUSIVE, now, "no data"),
            AnalysisRecord("latency", 1.1, Verdict.PASS, now, "ok"),
        ),
        message="Paused",
        conditions=conditions_for(Phase.PAUSED, (), now),
    )
    d = status.to_dict()
    assert d["phase"] == "Paused" and d["canaryWeight"] == 25 and d["currentStep"] == 3
    assert d["analysisHistory"][1] == {
        "metric": "latency",
        "value": 1.1,
        "verdict": "Pass",
        "time": "2023-11-14T22:13:20.500Z",
        "reason": "ok",
    }
    assert d["conditions"][0]["lastTransitionTime"] == "2023-11-14T22:13:20.500Z"
    assert RolloutStatus.from_dict(d) == status
    assert RolloutStatus.from_dict({}) == RolloutStatus() == RolloutStatus.from_dict(None)


def test_promoted_condition_moves_its_time_only_when_its_status_changes() -> None:
    t0, t1, t2, t3 = 100.0, 200.0, 300.0, 400.0
    progressing = conditions_for(Phase.PROGRESSING, (), t0)
    assert [(c.type, c.status, c.reason, c.last_transition_time) for c in progressing] == [
        ("Promoted", "Unknown", "Progressing", t0)
    ]
    paused = conditions_for(Phase.PAUSED, progressing, t1)
    assert paused[0].reason == "Paused" and paused[0].last_transition_time == t0  # still Unknown
    done = conditions_for(Phase.SUCCEEDED, paused, t2)
    assert (done[0].status, done[0].last_transition_time) == ("True", t2)
    again = conditions_for(Phase.SUCCEEDED, done, t3)
    assert again == done
    back = conditions_for(Phase.ROLLED_BACK, progressing, t3)
    assert (back[0].status, back[0].last_transition_time) == ("False", t3)


def test_every_phase_has_a_promoted_status() -> None:
    expected = {Phase.SUCCEEDED: "True", Phase.ROLLED_BACK: "False", Phase.FAILED: "False"}
    for phase in Phase:
        (cond,) = conditions_for(phase, (), 0.0)
        assert cond.status == expected.get(phase, "Unknown")
        assert phase.terminal == (phase in expected)
