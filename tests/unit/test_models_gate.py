"""Quality gate: passes, fails with readable reasons, uses a previous model's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidrec.models.gate import metrics_from_manifest, quality_gate


def _metrics(recall: float, pop_recall: float, ndcg: float, pop_ndcg: float) -> dict[str, float]:
    return {
        "retrieval.recall@100": recall,
        "retrieval.popularity_recall@100": pop_recall,
        "ranking.ndcg@10": ndcg,
        "ranking.popularity_ndcg@10": pop_ndcg,
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
    with pytest.raises(KeyError, match=r"ranking\.ndcg@10"):
        quality_gate({"retrieval.recall@100": 1.0, "retrieval.popularity_recall@100": 0.1}, None, 0)
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"version": "x"}))
    with pytest.raises(ValueError, match=r"manifest.json: field 'metrics'"):
        metrics_from_manifest(bad)
    with pytest.raises(ValueError, match="cannot read manifest"):
        metrics_from_manifest(tmp_path / "absent.json")
