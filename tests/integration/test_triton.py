"""The REAL tritonserver serving the generated repository returns the torch module's scores,
batches concurrent requests correctly, and serves a second version loaded at run time."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from vidrec.config import RankingConfig
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import add_ranker_version, write_model_repository
from vidrec.ranking.triton_client import RankerError, TritonRanker
from vidrec.ranking.triton_process import TritonProcess, TritonStartError
from vidrec.schema import RANKER_HEADS

sys.path.insert(0, str(Path(__file__).parent))
from triton_server import triton_server

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
D = 40


def ranker(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(D, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3), torch.nn.Sigmoid()
    ).eval()


def torch_scores(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@dataclass
class Served:
    server: TritonProcess
    repo: Path
    module: torch.nn.Module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("triton")
    module = ranker(seed=1)
    onnx = export_ranker_onnx(module, D, work / "ranker_v1.onnx")
    repo = write_model_repository(work / "model_repository", onnx, RankingConfig())
    with triton_server(repo, models=["ranker"], workdir=work) as server:
        yield Served(server, repo, module)


def features(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def test_scores_equal_torch_for_1000_candidates(served: Served) -> None:
    x = features(1000, seed=0)
    with TritonRanker(served.server.grpc_url, "ranker", timeout_s=10, model_version="1") as r:
        scores = r.score(x)
        assert r.heads() == RANKER_HEADS
    assert scores.shape == (1000, 3) and scores.dtype == np.float32
    assert np.abs(scores - torch_scores(served.module, x)).max() < 1e-4


def test_concurrent_requests_are_batched_and_split_back(served: Served) -> None:
    """The dynamic batcher merges these; every caller must still get its own rows back."""
    sizes = [1, 7, 300, 64, 512, 3, 100, 33]
    batches = [features(n, seed=10 + i) for i, n in enumerate(sizes)]
    url = served.server.grpc_url
    with (
        TritonRanker(url, timeout_s=10, model_version="1") as r,
        ThreadPoolExecutor(max_workers=len(sizes)) as pool,
    ):
        results = list(pool.map(r.score, batches))
    for x, scores in zip(batches, results, strict=True):
        assert np.abs(scores - torch_scores(served.module, x)).max() < 1e-4


def test_wrong_width_is_a_ranker_error(served: Served) -> None:
    with TritonRanker(served.server.grpc_url, timeout_s=10) as r, pytest.raises(RankerError) as e:
        r.score(np.zeros((4, D + 1), dtype=np.float32))
    assert e.value.reason == "error"


def test_second_version_loads_with_explicit_model_control(served: Served, tmp_path: Path) -> None:
    candidate = ranker(seed=2)
    add_ranker_version(served.repo, 2, export_ranker_onnx(candidate, D, tmp_path / "v2.onnx"))
    admin = grpcclient.InferenceServerClient(served.server.grpc_url)
    admin.load_model("ranker")
    assert admin.is_model_ready("ranker", "1") and admin.is_model_ready("ranker", "2")
    x = features(200, seed=5)
    url = served.server.grpc_url
    for version, module in (("1", served.module), ("2", candidate)):
        with TritonRanker(url, timeout_s=10, model_version=version) as r:
            assert np.abs(r.score(x) - torch_scores(module, x)).max() < 1e-4
    with TritonRanker(url, timeout_s=10) as latest:  # no version: Triton picks the highest
        assert np.abs(latest.score(x) - torch_scores(candidate, x)).max() < 1e-4


def test_failed_start_names_its_log(tmp_path: Path) -> None:
    """A repository without weights (the committed one) cannot load: the error says where
    the server's log is, and the log says why."""
    repo = write_model_repository(tmp_path / "repo", None, RankingConfig(), input_dim=D)
    with pytest.raises(TritonStartError) as e, triton_server(repo, workdir=tmp_path / "w"):
        pass
    log = tmp_path / "w" / "tritonserver.log"
    assert str(log) in str(e.value)
    assert "model.onnx" in log.read_text()
