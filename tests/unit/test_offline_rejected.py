"""A refused run keeps its evidence in OUT.rejected; the report marks undefined metrics."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from vidrec.cli_support import _gate_failure
from vidrec.contracts.manifest import read_manifest
from vidrec.errors import GateFailed
from vidrec.models.gate import quality_gate
from vidrec.offline.rejected import keep_rejected, rejected_dir

WHY = "every test impression is a click (no negatives): any order scores the same"


def _refusal() -> GateFailed:
    metrics = {
        "eval.two_tower.recall@100": 0.30,
        "eval.popularity.recall@100": 0.31,
        "eval.als.ndcg@10": 0.12,
        "retrieval.recall@100": 0.4,
    }
    undefined = {"eval.ranker.ndcg@10": WHY, "eval.slate_popularity.ndcg@10": WHY}
    gate = quality_gate(metrics, None, 0.05, undefined)
    assert not gate.passed
    evaluation = {
        "split": "per-user:0.2",
        "protocol": "filtered",
        "undefined": undefined,
        "gate": {"passed": False, "checks": gate.checks, "reasons": gate.reasons},
    }
    return GateFailed(gate.reasons, metrics, evaluation)


def test_refused_run_keeps_manifest_report_and_table(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # the model in place stays in place
    stage = tmp_path / ".stage"
    (stage / "report").mkdir(parents=True)
    (stage / "report" / "sim_vs_real_watch_ratio.png").write_bytes(b"png")
    (stage / "data").mkdir()
    (stage / "data" / "events.parquet").write_bytes(b"events")
    printed = io.StringIO()

    kept = keep_rejected(stage, out, _refusal(), "test", 7, Console(file=printed, width=140))

    assert kept == rejected_dir(out) == tmp_path / "model.rejected"
    manifest = read_manifest(kept / "manifest.json")
    assert manifest.model_version.startswith("rejected-")
    assert manifest.metrics["eval.two_tower.recall@100"] == 0.30
    assert manifest.evaluation["undefined"]["eval.ranker.ndcg@10"] == WHY
    assert manifest.evaluation["gate"]["passed"] is False
    report = {p.name for p in (kept / "report").iterdir()}
    assert {"sim_vs_real_watch_ratio.png", "retrieval_vs_baselines.png", "metrics.txt"} <= report
    assert not (kept / "data").exists() and not (kept / "models").exists()  # nothing exported
    assert (out / "manifest.json").read_text() == "{}"

    for text in (printed.getvalue(), (kept / "report" / "metrics.txt").read_text()):
        assert "filtered protocol, split per-user:0.2" in text
        assert "undefined" in text and WHY in text
        assert "gate: two-tower recall@100 0.3000 is not ≥ 1.05 × popularity 0.3100" in text
        assert f"gate: ranker NDCG@10 not judged: {WHY}" in text


def test_cli_message_names_where_the_evidence_is(tmp_path: Path) -> None:
    exc = _refusal()
    exc.kept = tmp_path / "model.rejected"
    message = _gate_failure(exc)
    assert "two-tower recall@100" in message
    assert str(tmp_path / "model.rejected") in message


def test_split_and_protocol_options_reach_the_config() -> None:
    from vidrec.config import Config
    from vidrec.offline.run import evaluation_config

    cfg = evaluation_config("per-user:0.20", True, Config())
    assert cfg.train.eval_split == "per-user:0.2" and cfg.train.eval_filter_seen is False
    default = evaluation_config(None, False, Config())
    assert default.train.eval_split == "auto" and default.train.eval_filter_seen is True
    with pytest.raises(ValueError, match="--split: unknown split 'weekly'"):
        evaluation_config("weekly", False, Config())
