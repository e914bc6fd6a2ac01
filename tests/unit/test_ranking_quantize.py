"""INT8 ranker: runs, stays close to fp32, and its AUC change and speed are measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.quantize import compare_int8, quantize_ranker
from vidrec.ranking.sessions import cpu_session

torch.set_num_threads(1)
D = 48


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    torch.manual_seed(3)
    head = torch.nn.Linear(64, 3)
    with torch.no_grad():
        head.weight.mul_(20.0)  # spread probabilities over (0, 1), like a trained ranker
    module = torch.nn.Sequential(
        torch.nn.Linear(D, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        head,
        torch.nn.Sigmoid(),
    )
    out = tmp_path_factory.mktemp("q")
    fp32 = export_ranker_onnx(module, D, out / "ranker.onnx")
    x = np.random.default_rng(0).normal(size=(4000, D)).astype(np.float32)
    int8 = quantize_ranker(fp32, out / "ranker.int8.onnx", x[:1000])
    return fp32, int8, x


def test_int8_graph_is_quantised_and_close(models: tuple[Path, Path, np.ndarray]) -> None:
    fp32, int8, x = models
    assert int8.stat().st_size < fp32.stat().st_size  # int8 weights
    (p32,) = cpu_session(fp32).run(None, {"features": x[1000:2000]})
    (p8,) = cpu_session(int8).run(None, {"features": x[1000:2000]})
    assert p8.shape == p32.shape == (1000, 3)
    diff = np.abs(p8 - p32)
    assert diff.max() < 0.05 and diff.mean() < 0.01
    assert not np.array_equal(p8, p32)  # it really is a different (quantised) graph


def test_report_measures_auc_change_and_speed(models: tuple[Path, Path, np.ndarray]) -> None:
    fp32, int8, x = models
    evaluation = x[1000:]
    (p,) = cpu_session(fp32).run(None, {"features": evaluation})
    labels = (np.random.default_rng(1).random(p.shape) < p).astype(np.int8)  # labels ~ model
    report = compare_int8(fp32, int8, evaluation, labels, repeats=10)
    assert set(report.auc_fp32) == {"p_click", "p_long_view", "p_like"}
    for head, auc in report.auc_fp32.items():
        assert auc > 0.6  # labels drawn from the model: it must rank them well
        assert abs(report.auc_delta[head]) < 0.02
        assert report.auc_delta[head] == report.auc_int8[head] - auc
    assert report.fp32_ms > 0 and report.int8_ms > 0
    assert report.speedup == report.fp32_ms / report.int8_ms
    assert report.to_dict()["batch_size"] == 500


def test_bad_calibration_names_the_model(
    models: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    fp32, _, _ = models
    with pytest.raises(ValueError, match=r"ranker.onnx: shape \[10, 5\]"):
        quantize_ranker(fp32, tmp_path / "x.onnx", np.zeros((10, 5), dtype=np.float32))


def test_single_class_labels_are_rejected(models: tuple[Path, Path, np.ndarray]) -> None:
    fp32, int8, x = models
    labels = np.zeros((100, 3), dtype=np.int8)
    labels[::2, :2] = 1
    with pytest.raises(ValueError, match="p_like"):
        compare_int8(fp32, int8, x[:100], labels, repeats=1)
