"""The REAL tritonserver, judged by its own statistics: the dynamic batcher merges concurrent
requests (fewer executions than requests) and every caller still gets its own rows; a fresh
server has run the warmup sample before it reports ready; and ``--model-config-name`` picks
the ONNX Runtime twin of the model, which this wheel's server cannot load (no such backend)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from vidrec.backends.ranker import TritonRankerClient
from vidrec.config import RankingConfig
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import ORT_CONFIG_NAME, write_model_repository
from vidrec.ranking.triton_client import InferenceCounts, TritonRanker, inference_counts
from vidrec.ranking.triton_process import TritonStartError, pytriton_dir

sys.path.insert(0, str(Path(__file__).parent))
from triton_server import triton_server

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
D = 40
WARMUP_ROWS = 300


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(7)
    module = torch.nn.Sequential(
        torch.nn.Linear(D, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3), torch.nn.Sigmoid()
    ).eval()
    return export_ranker_onnx(module, D, tmp_path_factory.mktemp("onnx") / "ranker.onnx")


def in_process(onnx: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"features": x})
    return np.asarray(scores)


def repository(root: Path, onnx: Path, **ranking: Any) -> Path:
    cfg = dataclasses.replace(RankingConfig(), **ranking)
    return write_model_repository(root, onnx, cfg, warmup_rows=WARMUP_ROWS)


def test_concurrent_requests_are_merged_and_split_back(onnx: Path, tmp_path: Path) -> None:
    """One instance and a long enough queue delay: requests fired together are executed
    together, on any machine load. Every request must get exactly its own rows."""
    repo = repository(
        tmp_path / "repo",
        onnx,
        cpu_instances=1,
        preferred_batch_sizes=(),
        max_queue_delay_us=50_000,
    )
    sizes = [1, 7, 300, 64, 500, 3, 100, 33, 250, 12, 90, 17, 45, 8, 120, 2]
    rng = np.random.default_rng(0)
    rounds = [[rng.normal(size=(n, D)).astype(np.float32) for n in sizes] for _ in range(4)]

    async def fire(url: str) -> list[list[np.ndarray]]:
        client = TritonRankerClient(url, "ranker", 10.0, lambda _variant: "")
        try:
            return [
                [a.heads for a in await asyncio.gather(*(client.score(x, "stable") for x in b))]
                for b in rounds
            ]
        finally:
            await client.close()

    with triton_server(repo, workdir=tmp_path / "w") as server:
        before = inference_counts(server.grpc_url, "ranker")
        answers = asyncio.run(fire(server.grpc_url))
        window = inference_counts(server.grpc_url, "ranker") - before
    n_requests = len(sizes) * len(rounds)
    assert window.requests == n_requests
    assert window.inference_count == sum(sizes) * len(rounds)
    assert window.execution_count < window.inference_count
    assert window.execution_count < n_requests  # merged: fewer executions than requests
    assert window.largest_batch > max(sizes)  # one execution ran several requests' rows
    for batches, got in zip(rounds, answers, strict=True):
        for x, scores in zip(batches, got, strict=True):
            assert scores.shape == (x.shape[0], 3)
            assert np.abs(scores - in_process(onnx, x)).max() < 1e-5


def test_fresh_server_has_run_the_warmup(onnx: Path, tmp_path: Path) -> None:
    """Before any client request, Triton's statistics already hold one warmup execution per
    instance at the candidate batch; the first real request is then answered correctly."""
    repo = repository(tmp_path / "repo", onnx, cpu_instances=2)
    with triton_server(repo, workdir=tmp_path / "w") as server:
        warm = inference_counts(server.grpc_url, "ranker")
        x = np.random.default_rng(1).normal(size=(WARMUP_ROWS, D)).astype(np.float32)
        with TritonRanker(server.grpc_url, timeout_s=10) as ranker:
            first = ranker.score(x)
        after = inference_counts(server.grpc_url, "ranker")
    assert warm.execution_count == 2 and warm.inference_count == 2 * WARMUP_ROWS
    assert warm.largest_batch == WARMUP_ROWS
    assert after - warm == InferenceCounts(1, 1, WARMUP_ROWS, ((WARMUP_ROWS, 1),))
    assert np.abs(first - in_process(onnx, x)).max() < 1e-5
    log = (tmp_path / "w" / "tritonserver.log").read_text()
    assert "unable to find backend" not in log


def test_model_config_name_selects_the_onnxruntime_twin(onnx: Path, tmp_path: Path) -> None:
    """The chart's CPU profile flag makes Triton read ranker/configs/onnxruntime.pbtxt. The
    nvidia-pytriton wheel ships only the python backend, so here that config cannot load: the
    local stack serves the python-backend config, the NGC image the ORT one."""
    assert sorted(p.name for p in (pytriton_dir() / "tritonserver" / "backends").iterdir()) == [
        "python"
    ]
    repo = repository(tmp_path / "repo", onnx)
    with (
        pytest.raises(TritonStartError),
        triton_server(
            repo, workdir=tmp_path / "w", extra_args=[f"--model-config-name={ORT_CONFIG_NAME}"]
        ),
    ):
        pass
    log = (tmp_path / "w" / "tritonserver.log").read_text()
    assert "unable to find backend library for backend 'onnxruntime'" in log
