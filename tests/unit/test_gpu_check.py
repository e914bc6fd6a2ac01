"""`vidrec gpu check` on a machine without a GPU: the refusal naming what is missing, the
detection of what a GPU node has (fake nvidia-smi/trtexec/tritonserver), and the
comparison, throughput and report logic with ONNX Runtime standing on both sides (the
TensorRT runner itself is not executed here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.unit.test_ranking_model_repository import fake_bin
from vidrec.cli import app
from vidrec.config import RankingConfig
from vidrec.errors import InputError
from vidrec.ranking import gpu_check
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.gpu_check import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    Comparison,
    Environment,
    GpuUnavailable,
    Report,
    Throughput,
    compare_scores,
    detect,
    find_ranker_onnx,
    measure_concurrent,
    measure_in_process,
    merged_batches,
    ort_scorer,
    report_table,
    requests_of,
    sample_rows,
    write_report,
)

torch.set_num_threads(1)
D = 12
HEADS = RankingConfig().heads
NGC_PRESENT = gpu_check.NGC_TRTEXEC.exists()


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    module = torch.nn.Sequential(
        torch.nn.Linear(D, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3), torch.nn.Sigmoid()
    )
    return export_ranker_onnx(module, D, tmp_path_factory.mktemp("m") / "ranker.onnx")


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D), dtype=np.float32)


def bare_env(tmp_path: Path, *tools: str) -> dict[str, str]:
    """A PATH with only the named fake tools and the system's basics."""
    fakes = fake_bin(tmp_path)
    chosen = tmp_path / "chosen"
    chosen.mkdir(exist_ok=True)
    for tool in tools:
        (chosen / tool).symlink_to(fakes / tool)
    return {"PATH": f"{chosen}:/usr/bin:/bin", "HOME": str(tmp_path)}


@pytest.mark.skipif(NGC_PRESENT, reason="this machine has the NGC trtexec")
def test_cli_without_a_gpu_exits_4_naming_each_missing_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", bare_env(tmp_path)["PATH"])
    monkeypatch.delenv("TRTEXEC", raising=False)
    result = CliRunner().invoke(app, ["gpu", "check", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 4
    text = " ".join(result.output.split())
    for missing in ("nvidia-smi", "trtexec", "/usr/src/tensorrt/bin/trtexec", "TensorRT runtime"):
        assert missing in text, missing
    assert "run it on a gpu node" in text.lower() and "TRTEXEC" in text
    assert not (tmp_path / "r.json").exists()


@pytest.mark.skipif(NGC_PRESENT, reason="this machine has the NGC trtexec")
def test_detect_names_only_what_is_missing(tmp_path: Path) -> None:
    env = bare_env(tmp_path, "nvidia-smi", "trtexec")
    with pytest.raises(GpuUnavailable) as caught:
        detect(env)
    assert [m.what for m in caught.value.missing] == ["TensorRT runtime"]
    with pytest.raises(GpuUnavailable) as caught:
        detect({**env, "FAKE_GPU": ""})  # the driver is there, no GPU given to us
    assert [m.what for m in caught.value.missing] == ["GPU", "TensorRT runtime"]
    with pytest.raises(GpuUnavailable, match="TRTEXEC=/nowhere/trtexec is not executable"):
        detect({**env, "TRTEXEC": "/nowhere/trtexec"})


def test_detect_prefers_triton_with_a_tensorrt_backend(tmp_path: Path) -> None:
    env = bare_env(tmp_path, "nvidia-smi", "trtexec")
    server = Path(env["PATH"].split(":")[0]) / "tritonserver"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    backends = tmp_path / "backends"
    (backends / "python").mkdir(parents=True)  # the pip wheel's kind: no tensorrt backend
    env["TRITON_BACKENDS"] = str(backends)
    trtexec = str(Path(env["PATH"].split(":")[0]) / "trtexec")
    if not NGC_PRESENT:
        with pytest.raises(GpuUnavailable, match="no tritonserver with a tensorrt backend"):
            detect(env)
    (backends / "tensorrt").mkdir()
    found = detect({**env, "TRTEXEC": trtexec})
    assert found == Environment(
        gpu="NVIDIA H100 80GB HBM3, 9.0",
        trtexec=Path(trtexec),
        runner="triton",
        tritonserver=server,
        backend_dir=backends,
    )


def test_the_fp16_tolerance_passes_fp16_rounding_and_fails_a_broken_plan(onnx: Path) -> None:
    """ONNX Runtime on both sides: identical scores pass at any tolerance; scores rounded
    to float16 (what an FP16 output costs) pass 1e-2 but not FP32's 1e-4 on some rows; a
    plan fed the features in the wrong order fails by far."""
    score = ort_scorer(onnx)
    x = rows(1000)
    reference = score(x)
    same = compare_scores(reference, score(x.copy()), FP32_TOLERANCE, HEADS)
    assert same.passed and same.max_abs_diff == 0.0 and same.rows == 1000
    fp16 = reference.astype(np.float16).astype(np.float32)
    assert compare_scores(reference, fp16, FP16_TOLERANCE, HEADS).passed
    assert not compare_scores(reference, fp16, 1e-5, HEADS).passed
    broken = compare_scores(reference, score(x[:, ::-1].copy()), FP16_TOLERANCE, HEADS)
    assert not broken.passed and broken.max_abs_diff > 10 * FP16_TOLERANCE
    assert set(broken.max_abs_diff_per_head) == set(HEADS)
    nan = reference.copy()
    nan[5, 1] = np.nan
    assert not compare_scores(reference, nan, FP16_TOLERANCE, HEADS).passed
    with pytest.raises(ValueError, match="shapes differ"):
        compare_scores(reference, reference[:10], FP16_TOLERANCE, HEADS)


def test_merged_batches_never_split_a_request_nor_pass_max_batch() -> None:
    requests = [np.zeros((n, D), np.float32) for n in (500, 500, 32, 600, 1024, 1)]
    groups = merged_batches(requests, 1024)
    assert [[len(r) for r in g] for g in groups] == [[500, 500], [32, 600], [1024], [1]]
    assert sum(len(g) for g in groups) == len(requests)


def test_in_process_batching_makes_fewer_calls_over_the_same_rows(onnx: Path) -> None:
    score = ort_scorer(onnx)
    calls: list[int] = []

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return score(x)

    requests = requests_of(rows(1000), 32, 64)
    assert all(r.shape == (32, D) for r in requests)
    alone = measure_in_process(counting, requests, max_batch=1024, batched=False)
    assert len(calls) == 64 and alone.mode == "no batching"
    calls.clear()
    merged = measure_in_process(counting, requests, max_batch=1024, batched=True)
    assert calls == [1024, 1024] and merged.mode == "dynamic batching"
    for t in (alone, merged):
        assert t.requests == 64 and t.rows_per_request == 32
        assert t.rows_per_s == pytest.approx(t.requests_per_s * 32)


def test_concurrent_measurement_counts_every_request_and_fails_on_an_error(onnx: Path) -> None:
    score = ort_scorer(onnx)
    t = measure_concurrent(score, requests_of(rows(200), 20, 30), 4, "dynamic batching")
    assert (t.requests, t.rows_per_request, t.mode) == (30, 20, "dynamic batching")

    def failing(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("Triton said no")

    with pytest.raises(RuntimeError, match="Triton said no"):
        measure_concurrent(failing, requests_of(rows(200), 20, 3), 2, "no batching")


def test_report_json_and_table(tmp_path: Path) -> None:
    comparison = Comparison(1000, 1e-2, 3.1e-3, 4e-4, {"p_click": 3.1e-3}, True)
    throughput = [
        Throughput("no batching", 32, 400, 2.0, 200.0, 6400.0),
        Throughput("dynamic batching", 32, 400, 0.5, 800.0, 25600.0),
    ]
    report = Report(
        "NVIDIA L4, 8.9", "triton", "a.onnx", "p.plan", {"precision": "fp16"}, "noise",
        comparison, throughput, ["a note"],
    )  # fmt: skip
    data = json.loads(write_report(report, tmp_path / "out" / "r.json").read_text())
    assert data["passed"] is True and data["comparison"]["max_abs_diff"] == 3.1e-3
    assert [t["rows_per_s"] for t in data["throughput"]] == [6400.0, 25600.0]
    table = report_table(report)
    assert "PASS" in table and "NVIDIA L4" in table and "note: a note" in table
    assert "25600" in table and "dynamic batching" in table
    failed = Report(**{**report.__dict__, "comparison": Comparison(10, 1e-2, 0.4, 0.1, {}, False)})
    assert not failed.passed and "FAIL" in report_table(failed)


def test_demo_inputs_are_found(tmp_path: Path, onnx: Path) -> None:
    with pytest.raises(InputError, match=r"ranker\.onnx"):
        find_ranker_onnx(tmp_path)
    for v in ("2", "10"):
        (tmp_path / "model_repository" / "ranker" / v).mkdir(parents=True)
        (tmp_path / "model_repository" / "ranker" / v / "model.onnx").write_bytes(b"")
    assert find_ranker_onnx(tmp_path).parent.name == "10"  # the newest version
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "ranker.onnx").write_bytes(onnx.read_bytes())
    assert find_ranker_onnx(tmp_path) == tmp_path / "models" / "ranker.onnx"
    x, source = sample_rows(tmp_path, 100, D)
    assert x.shape == (100, D) and "noise" in source
    real = rows(300, seed=9)
    np.savez(tmp_path / "models" / "eval_sample.npz", ranker_x=real)
    x, source = sample_rows(tmp_path, 100, D)
    assert np.array_equal(x, real[:100]) and "eval_sample.npz" in source


def test_run_gpu_check_end_to_end_with_ort_standing_in_for_tensorrt(
    tmp_path: Path, onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orchestration as it runs on a GPU node without Triton, with stand-ins: fake
    trtexec/nvidia-smi build the "plan" through the chart's script, and ONNX Runtime scores
    in place of the TensorRT runner. Proves the plumbing, not TensorRT."""
    env = bare_env(tmp_path, "nvidia-smi", "trtexec")
    monkeypatch.setenv("PATH", f"{env['PATH'].split(':')[0]}:{os.environ['PATH']}")
    monkeypatch.setenv("TRTEXEC_LOG", str(tmp_path / "calls.txt"))
    trtexec = Path(env["PATH"].split(":")[0]) / "trtexec"
    machine = Environment("NVIDIA L4, 8.9", trtexec, "tensorrt", None, None)
    monkeypatch.setattr(gpu_check, "detect", lambda env=None: machine)
    monkeypatch.setattr(gpu_check, "tensorrt_scorer", lambda plan: ort_scorer(onnx))
    artefacts = tmp_path / "demo"
    (artefacts / "models").mkdir(parents=True)
    (artefacts / "models" / "ranker.onnx").write_bytes(onnx.read_bytes())
    out = tmp_path / "check" / "report.json"
    report = gpu_check.run_gpu_check(
        artefacts, out, rows=200, request_rows=(16,), requests=20
    )  # fmt: skip
    assert report.passed and report.comparison.max_abs_diff == 0.0
    assert report.plan_key["precision"] == "fp16" and report.plan_key["gpu"].startswith("NVIDIA")
    assert [t.mode for t in report.throughput] == ["no batching", "dynamic batching"]
    assert (out.parent / "model_repository" / "ranker_trt" / "1" / "model.plan").is_file()
    assert json.loads(out.read_text())["comparison"]["rows"] == 200
    calls = (tmp_path / "calls.txt").read_text()
    gpu_check.run_gpu_check(artefacts, out, rows=10, request_rows=(4,), requests=2)
    assert (tmp_path / "calls.txt").read_text() == calls  # same key: the rerun skipped
