"""Blue-green through the engine: preview, pre-promotion analysis, auto and manual promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_rollout_engine import FAIL, NODATA, PASS, Sim
from vidrec.rollout.analysis import MetricResult, Verdict
from vidrec.rollout.engine import (
    Notify,
    SetWeights,
    UnloadCandidate,
    UnloadStable,
    analysis_due,
)
from vidrec.rollout.spec import BlueGreenStrategy, Phase, RolloutSpec


def bg_spec(**blue_green: Any) -> RolloutSpec:
    return RolloutSpec.from_dict(
        {
            "model": "ranker",
            "stableVersion": "3",
            "candidateVersion": "s3://models/ranker/4",
            "strategy": {
                "blueGreen": {
                    "previewWeight": 5,
                    "autoPromotionSeconds": 300,
                    "scaleDownDelaySeconds": 60,
                    **blue_green,
                }
            },
            "analysis": {
                "interval": "1m",
                "failureLimit": 1,
                "metrics": [{"name": "latency", "template": "latency-p99-ratio"}],
            },
        }
    )


def preview(spec: RolloutSpec) -> Sim:
    sim = Sim(spec)
    sim.loaded = {"3"}
    sim.tick()
    assert sim.weights == (100, 0)  # nothing moves before the candidate is ready
    sim.tick(5)
    return sim


def test_preview_then_auto_promotion_after_analysis_passed() -> None:
    sim = preview(bg_spec())
    assert (sim.phase, sim.weights, sim.status.step_index) == (Phase.PROGRESSING, (95, 5), 0)
    assert "waiting for pre-promotion analysis" in sim.status.message
    sim.tick(60, PASS)
    assert sim.phase is Phase.PROGRESSING and "auto-promotion in 240s" in sim.status.message
    sim.tick(240)
    assert (sim.phase, sim.weights, sim.status.step_index) == (Phase.PROMOTING, (0, 100), 1)
    assert "(preview analysis passed, auto-promotion time reached)" in sim.status.message
    sim.tick(59)
    assert sim.phase is Phase.PROMOTING
    d = sim.tick(1)
    assert sim.phase is Phase.SUCCEEDED and UnloadStable("ranker", "3") in d.actions


def test_auto_promotion_waits_for_a_passing_analysis() -> None:
    sim = preview(bg_spec())
    sim.tick(600, NODATA)
    assert sim.phase is Phase.PROGRESSING  # time is up, but no data never promotes
    sim.tick(60, PASS)
    assert sim.phase is Phase.PROMOTING


def test_failed_pre_promotion_analysis_rolls_back() -> None:
    sim = preview(bg_spec())
    sim.tick(60, FAIL)
    assert (sim.phase, sim.weights) == (Phase.ROLLED_BACK, (100, 0))
    assert "s3://models/ranker/4" not in sim.loaded


def test_without_auto_promotion_a_person_promotes() -> None:
    sim = preview(bg_spec(autoPromotionSeconds=None))
    sim.tick(60, PASS)
    sim.tick(3600)
    assert sim.phase is Phase.PROGRESSING and "run `promote`" in sim.status.message
    d = sim.tick(1, command="promote")
    assert sim.phase is Phase.PROMOTING and SetWeights(0, 100) in d.actions


def test_without_pre_promotion_analysis_only_the_clock_gates() -> None:
    sim = preview(bg_spec(prePromotionAnalysis=False, previewWeight=0))
    assert sim.weights == (100, 0)
    sim.tick(299)
    assert sim.phase is Phase.PROGRESSING
    sim.tick(1)
    assert sim.phase is Phase.PROMOTING


def test_abort_during_preview() -> None:
    sim = preview(bg_spec())
    sim.tick(10, command="abort")
    assert (sim.phase, sim.weights) == (Phase.ROLLED_BACK, (100, 0))


def test_first_preview_analysis_waits_a_full_interval_of_preview_traffic() -> None:
    """The window a template queries must hold preview traffic only, as a canary step's does."""
    sim = preview(bg_spec())
    loaded_at = sim.now
    assert ("WeightChanged", "Candidate weight 0% → 5%") in [
        (a.reason, a.message) for a in sim.log if isinstance(a, Notify)
    ]
    assert sim.status.last_analysis_at == loaded_at
    assert not analysis_due(sim.spec, sim.status, loaded_at + 59)
    assert analysis_due(sim.spec, sim.status, loaded_at + 60)


def test_a_dark_preview_says_only_traffic_free_checks_can_pass() -> None:
    sim = preview(bg_spec(previewWeight=0))
    assert sim.weights == (100, 0) and "WeightChanged" not in sim.notes()
    assert "no users on it: only traffic-free checks" in sim.status.message
    sim.tick(60, NODATA)
    assert sim.phase is Phase.PROGRESSING and sim.status.inconclusive_checks == 1


def test_a_failure_after_a_pass_still_rolls_back_before_promotion() -> None:
    """Analysis keeps running through the whole preview, not just until its first pass."""
    sim = preview(bg_spec())
    sim.tick(60, PASS)
    assert "auto-promotion in 240s" in sim.status.message
    d = sim.tick(60, FAIL)
    assert (sim.phase, sim.weights, sim.status.canary_weight) == (Phase.ROLLED_BACK, (100, 0), 0)
    assert UnloadCandidate("ranker", "s3://models/ranker/4") in d.actions
    assert "Promoting" not in sim.notes()
    assert "latency = 1.8" in sim.status.message


EXAMPLES = sorted(
    (Path(__file__).resolve().parents[2] / "charts" / "vidrec" / "examples").glob(
        "modelrollout-*.yaml"
    )
)
BLUE_GREEN_EXAMPLES = [
    p for p in EXAMPLES if "blueGreen" in yaml.safe_load(p.read_text())["spec"]["strategy"]
]


def test_there_is_a_blue_green_example() -> None:
    assert BLUE_GREEN_EXAMPLES, EXAMPLES


@pytest.mark.parametrize("path", BLUE_GREEN_EXAMPLES, ids=lambda p: p.name)
def test_blue_green_examples_give_their_metric_analysis_preview_users(path: Path) -> None:
    """Prometheus templates compare the variants, so the preview needs users of its own."""
    spec = RolloutSpec.from_dict(yaml.safe_load(path.read_text())["spec"])
    assert isinstance(spec.strategy, BlueGreenStrategy)
    metric_analysis = spec.strategy.pre_promotion_analysis and any(
        m.provider == "prometheus" for m in spec.analysis.metrics
    )
    assert not metric_analysis or spec.strategy.preview_weight > 0


@pytest.mark.parametrize("path", BLUE_GREEN_EXAMPLES, ids=lambda p: p.name)
def test_blue_green_examples_promote_after_a_passing_preview(path: Path) -> None:
    spec = RolloutSpec.from_dict(yaml.safe_load(path.read_text())["spec"])
    assert isinstance(spec.strategy, BlueGreenStrategy)
    sim = Sim(spec, loaded={spec.stable_version})
    sim.tick()
    sim.tick(5)
    weight = spec.strategy.preview_weight
    assert (sim.phase, sim.weights) == (Phase.PROGRESSING, (100 - weight, weight))
    results = tuple(
        MetricResult(m.name, 1.0, Verdict.PASS, f"{m.name} passed") for m in spec.analysis.metrics
    )
    deadline = sim.now + (spec.strategy.auto_promotion_s or 0) + 4 * spec.analysis.interval_s
    while sim.phase is Phase.PROGRESSING and sim.now < deadline:
        sim.tick(spec.analysis.interval_s / 2, results)
    assert sim.phase is Phase.PROMOTING, sim.status.message
    sim.tick(spec.strategy.scale_down_delay_s)
    assert (sim.phase, sim.weights) == (Phase.SUCCEEDED, (0, 100))
