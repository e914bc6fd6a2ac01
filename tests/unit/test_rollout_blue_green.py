"""Blue-green through the engine: preview, pre-promotion analysis, auto and manual promotion."""

from __future__ import annotations

from typing import Any

from tests.unit.test_rollout_engine import FAIL, NODATA, PASS, Sim
from vidrec.rollout.engine import SetWeights, UnloadStable
from vidrec.rollout.spec import Phase, RolloutSpec


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
