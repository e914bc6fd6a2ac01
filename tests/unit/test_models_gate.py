"""Quality gate: passes, fails with readable reasons, uses a previous model's metrics, and
never judges a metric the test data leaves undefined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidrec.models.gate import metrics_from_manifest, quality_gate, undefined_from_manifest


def _metrics(recall: float, pop_recall: float, ndcg: float, pop_ndcg: float) -> dict[str, float]:
    return {
        "eval.two_tower.recall@100": recall,
        "eval.popularity.recall@100": pop_recall,
        "eval.ranker.ndcg@10": ndcg,
        "eval.slate_popularity.ndcg@10": pop_ndcg,
    }


def test_passes_when_both_models_beat_popularity_by_the_margin() -> None:
    result = quality_gate(_metrics(0.20, 0.10, 0.60, 0.50), None, margin=0.05)
    assert result.passed and result.reasons == []
    assert len(result.checks) == 2


def test_fails_with_a_sentence_per_failed_check() -> None:
    result = quality_gate(_metrics(0.081, 0.079, 0.60, 0.50), None, margin=0.05)
    assert not result.passed
    assert result.reasons == ["two-tower recall@100 0.0810 is not ≥ 1.05 × popularity 0.0790"]
    both = quality_gate(_metrics(0.05, 0.079, 0.40, 0.50), None, margin=0.05)
    assert len(both.reasons) == 2 and "ranker NDCG@10 0.4000" in both.reasons[1]


def test_zero_and_nan_never_pass() -> None:
    assert not quality_gate(_metrics(0.0, 0.0, 0.6, 0.5), None, margin=0.0).passed
    assert not quality_gate(_metrics(float("nan"), 0.1, 0.6, 0.5), None, margin=0.0).passed


def test_previous_model_replaces_popularity_as_reference(tmp_path: Path) -> None:
    current = _metrics(0.20, 0.10, 0.60, 0.50)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"metrics": _metrics(0.195, 0.1, 0.55, 0.5)}))
    result = quality_gate(current, metrics_from_manifest(manifest), margin=0.05)
    assert not result.passed
    assert result.reasons == [
        "two-tower recall@100 0.2000 is not ≥ 1.05 × the previous model 0.1950"
    ]
    assert quality_gate(current, metrics_from_manifest(manifest), margin=0.0).passed


def test_missing_metrics_and_bad_manifests_are_named(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"eval\.ranker\.ndcg@10"):
        quality_gate({"eval.two_tower.recall@100": 1.0, "eval.popularity.recall@100": 0.1}, None, 0)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"metrics": {"retrieval.recall@100": 0.2}}))
    with pytest.raises(ValueError, match=r"--baseline: .*'eval\.two_tower\.recall@100'"):
        quality_gate(_metrics(0.2, 0.1, 0.6, 0.5), metrics_from_manifest(old), 0.05)
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"version": "x"}))
    with pytest.raises(ValueError, match=r"manifest.json: field 'metrics'"):
        metrics_from_manifest(bad)
    with pytest.raises(ValueError, match="cannot read manifest"):
        metrics_from_manifest(tmp_path / "absent.json")


def test_undefined_metrics_are_skipped_with_their_reason() -> None:
    metrics = _metrics(0.20, 0.10, 1.0, 1.0)
    del metrics["eval.ranker.ndcg@10"], metrics["eval.slate_popularity.ndcg@10"]
    why = "every test impression is a click (no negatives): any order scores the same"
    result = quality_gate(metrics, None, 0.05, {"eval.ranker.ndcg@10": why})
    assert result.passed, result.reasons
    assert result.checks[1] == f"ranker NDCG@10 not judged: {why}"
    # a skipped check never rescues a failing one
    failing = quality_gate(_metrics(0.1, 0.1, 0.6, 0.5), None, 0.05, {"eval.ranker.ndcg@10": why})
    assert not failing.passed and len(failing.reasons) == 1


def test_a_gate_with_nothing_to_judge_refuses() -> None:
    why = {"eval.two_tower.recall@100": "no test clicks", "eval.ranker.ndcg@10": "no negatives"}
    result = quality_gate({}, None, 0.05, why)
    assert not result.passed
    assert result.reasons[0].startswith("no gate check could be judged")


def test_previous_models_undefined_reasons_are_read(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"evaluation": {"undefined": {"eval.ranker.ndcg@10": "x"}}}))
    assert undefined_from_manifest(manifest) == {"eval.ranker.ndcg@10": "x"}
    manifest.write_text(json.dumps({"metrics": {}}))
    assert undefined_from_manifest(manifest) == {}
