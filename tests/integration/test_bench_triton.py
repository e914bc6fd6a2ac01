"""`vidrec bench serving`'s Triton part on real servers, briefly: every run reports Triton's
own counters and both sides' CPU, the no-batching server never merges, the batching one
does. Correctness of the report only; the figures themselves belong to the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console

from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import CONFIG_FILE, RANKER_MODEL, parse_config
from vidrec_dev.bench.triton import (
    LABELS,
    SMALL_BATCH,
    TRITON_CLIENTS,
    bench_triton,
    ranker_repository,
)

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
D = 24
ROWS = 100


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    (root / "models").mkdir()
    module = torch.nn.Sequential(torch.nn.Linear(D, 3), torch.nn.Sigmoid()).eval()
    export_ranker_onnx(module, D, root / "models" / "ranker.onnx")
    return root


def test_repositories_differ_only_in_dynamic_batching(demo: Path, tmp_path: Path) -> None:
    on = parse_config(ranker_repository(demo, tmp_path / "on", True) / RANKER_MODEL / CONFIG_FILE)
    off = parse_config(
        ranker_repository(demo, tmp_path / "off", False) / RANKER_MODEL / CONFIG_FILE
    )
    assert on.HasField("dynamic_batching") and not off.HasField("dynamic_batching")
    off.dynamic_batching.CopyFrom(on.dynamic_batching)
    assert off == on


def test_bench_reports_triton_statistics_per_run(demo: Path, tmp_path: Path) -> None:
    r = bench_triton(demo, tmp_path, ROWS, 2.0, Console(quiet=True))
    for rows in (ROWS, SMALL_BATCH):
        for label in LABELS:
            key = f"triton.{label}.b{rows}"
            requests = r[f"{key}.requests"]
            assert requests > 0 and r[f"{key}.inferences_per_s"] > 0
            assert r[f"{key}.inference_count"] == requests * rows  # rows, not requests
            assert r[f"{key}.server_cpu_ms_per_request"] > 0
            assert r[f"{key}.client_cpu_ms_per_request"] > 0
        off, on = f"triton.no_batching.b{rows}", f"triton.batching.b{rows}"
        assert r[f"{off}.execution_count"] == r[f"{off}.requests"]  # never merged
        assert r[f"{off}.largest_batch"] == rows
        assert r[f"{on}.execution_count"] <= r[f"{on}.requests"]
        assert r[f"{on}.largest_batch"] <= TRITON_CLIENTS * rows
        assert r[f"triton.b{rows}.batching_speedup"] > 0
        assert r[f"triton.b{rows}.batching_server_cpu_saving"] > 0
