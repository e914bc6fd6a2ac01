"""ONNX export: dynamic batch axis, equality with torch, contract checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidrec.ranking.export import (
    export_ranker_onnx,
    export_user_tower_onnx,
    verify_onnx,
)
from vidrec.ranking.sessions import cpu_session, ranker_input_width

torch.set_num_threads(1)
D, DU, H, E, N_VIDEOS = 24, 10, 6, 8, 50


def ranker() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(D, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3), torch.nn.Sigmoid()
    )


class UserTower(torch.nn.Module):
    """Mean of history embeddings (ignoring -1 padding) concatenated with user features."""

    def __init__(self) -> None:
        super().__init__()
        self.videos = torch.nn.Embedding(N_VIDEOS, E)
        self.mlp = torch.nn.Linear(DU + E, E)

    def forward(self, user_x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        mask = (history >= 0).unsqueeze(-1).float()
        pooled = (self.videos(history.clamp(min=0)) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(self.mlp(torch.cat([user_x, pooled], 1)), dim=1)


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_ranker_onnx_equals_torch_for_any_batch(tmp_path: Path, batch: int) -> None:
    module = ranker()
    path = export_ranker_onnx(module, D, tmp_path / "ranker.onnx")
    x = np.random.default_rng(batch).normal(size=(batch, D)).astype(np.float32)
    assert verify_onnx(module, path, [x]) < 1e-4
    (y,) = cpu_session(path).run(["scores"], {"features": x})
    assert y.shape == (batch, 3) and ((y > 0) & (y < 1)).all()


def test_ranker_onnx_signature(tmp_path: Path) -> None:
    path = export_ranker_onnx(ranker(), D, tmp_path / "r.onnx")
    session = cpu_session(path)
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", D)
    assert (out.name, out.shape[1]) == ("scores", 3)
    assert isinstance(inp.shape[0], str)  # symbolic: the batch axis is dynamic
    assert ranker_input_width(path) == D


def test_user_tower_onnx_equals_torch(tmp_path: Path) -> None:
    module = UserTower()
    path = export_user_tower_onnx(module, DU, H, tmp_path / "user_tower.onnx")
    rng = np.random.default_rng(1)
    for batch in (1, 7, 300):
        user_x = rng.normal(size=(batch, DU)).astype(np.float32)
        history = rng.integers(-1, N_VIDEOS, size=(batch, H)).astype(np.int64)
        history[0] = -1  # a user with no history at all
        assert verify_onnx(module, path, [user_x, history]) < 1e-4
    names = [i.name for i in cpu_session(path).get_inputs()]
    assert names == ["user_x", "history"]


def test_export_keeps_training_mode_and_rejects_wrong_heads(tmp_path: Path) -> None:
    module = ranker().train()
    export_ranker_onnx(module, D, tmp_path / "r.onnx")
    assert module.training
    two_heads = torch.nn.Sequential(torch.nn.Linear(D, 2), torch.nn.Sigmoid())
    with pytest.raises(ValueError, match=r"Sequential.forward returned shape \[2, 2\]"):
        export_ranker_onnx(two_heads, D, tmp_path / "bad.onnx")


def test_verify_detects_a_different_model(tmp_path: Path) -> None:
    path = export_ranker_onnx(ranker(), D, tmp_path / "r.onnx")
    other = ranker()
    with torch.no_grad():
        next(iter(other.parameters())).add_(1.0)  # same architecture, other weights
    x = np.random.default_rng(2).normal(size=(16, D)).astype(np.float32)
    assert verify_onnx(other, path, [x]) > 1e-3
