"""Multi-task ranker: MMoE (Ma et al., KDD 2018) with a training-only position-bias tower.

Shared experts feed one softmax gate per task, so click, long-view and like share what they
have in common without forcing one representation on all three. Clicks and long views depend
on where a video was shown; a shallow tower over ``position`` adds that bias to their logits
during training (PAL-style) and is dropped at serving, so scores rank by relevance alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from vidrec.config import TrainConfig
from vidrec.errors import InputError
from vidrec.models.calibration import PlattParams, fit_platt_heads
from vidrec.models.frames import float_matrix, int_vector, label_matrix
from vidrec.models.params import RankerParams
from vidrec.models.training import minibatches, prepare_torch
from vidrec.schema import RANKER_HEADS

RANKER_TABLE = "ranker examples"
LABEL_COLUMNS: tuple[str, ...] = ("click", "long_view", "like")
"""Label column of each head, in ``RANKER_HEADS`` order."""
POSITION_BIASED_HEADS: tuple[str, ...] = ("p_click", "p_long_view")


@dataclass(frozen=True)
class RankerSpec:
    input_dim: int
    n_experts: int
    expert_dim: int
    tower_dim: int
    n_positions: int


class MMoE(nn.Module):
    """``forward(x, position=None) -> logits [B, len(RANKER_HEADS)]``.

    ``position=None`` is serving: no position bias. Inputs are standardised by buffers
    computed on the training set, so the exported graph takes raw feature vectors.
    """

    x_mean: torch.Tensor
    x_std: torch.Tensor
    biased_heads: torch.Tensor

    def __init__(self, spec: RankerSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("x_mean", torch.zeros(spec.input_dim))
        self.register_buffer("x_std", torch.ones(spec.input_dim))
        # All experts are one GEMM and all gates another: [B, n_experts * expert_dim].
        self.experts = nn.Linear(spec.input_dim, spec.n_experts * spec.expert_dim)
        self.gates = nn.Linear(spec.input_dim, len(RANKER_HEADS) * spec.n_experts)
        self.towers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(spec.expert_dim, spec.tower_dim), nn.ReLU(), nn.Linear(spec.tower_dim, 1)
            )
            for _ in RANKER_HEADS
        )
        self.position_bias = nn.Embedding(spec.n_positions, len(POSITION_BIASED_HEADS))
        nn.init.zeros_(self.position_bias.weight)
        biased = [RANKER_HEADS.index(h) for h in POSITION_BIASED_HEADS]
        self.register_buffer("biased_heads", torch.tensor(biased, dtype=torch.long))

    def forward(self, x: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        z = (x - self.x_mean) / self.x_std
        n_heads, n_experts = len(RANKER_HEADS), self.spec.n_experts
        experts = torch.relu(self.experts(z)).view(-1, n_experts, self.spec.expert_dim)
        gates = torch.softmax(self.gates(z).view(-1, n_heads, n_experts), dim=-1)
        mixed = torch.bmm(gates, experts)  # [B, heads, expert_dim]: each task's own mixture
        out = torch.cat([tower(mixed[:, h]) for h, tower in enumerate(self.towers)], dim=1)
        if position is None:
            return out
        bias = self.position_bias(position.clamp(0, self.spec.n_positions - 1))
        return out.index_add(1, self.biased_heads, bias)


class RankerServing(nn.Module):
    """``forward(x float32[B, D]) -> float32[B, 3]``: Platt-calibrated, position-neutral."""

    platt_a: torch.Tensor
    platt_b: torch.Tensor

    def __init__(self, ranker: MMoE, platt: PlattParams) -> None:
        super().__init__()
        self.ranker = ranker
        self.register_buffer("platt_a", torch.from_numpy(platt.a.astype(np.float32)))
        self.register_buffer("platt_b", torch.from_numpy(platt.b.astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.ranker(x) * self.platt_a + self.platt_b)

    @property
    def platt(self) -> PlattParams:
        return PlattParams(self.platt_a.numpy().copy(), self.platt_b.numpy().copy())


@torch.no_grad()
def predict(
    module: nn.Module, x: np.ndarray, position: np.ndarray | None = None, batch_size: int = 65536
) -> np.ndarray:
    """Run ``module`` (MMoE → logits, RankerServing → probabilities) over ``x`` in batches."""
    module.eval()
    xt = torch.tensor(x, dtype=torch.float32)
    pt = None if position is None else torch.tensor(position, dtype=torch.int64)
    parts = []
    for start in range(0, xt.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        parts.append(module(xt[sl]) if pt is None else module(xt[sl], pt[sl]))
    if not parts:
        return np.zeros((0, len(RANKER_HEADS)), np.float32)
    out: np.ndarray = torch.cat(parts).numpy()
    return out


@dataclass(frozen=True)
class RankerData:
    x: np.ndarray  # float32 [N, D]
    position: np.ndarray  # int64 [N]
    labels: np.ndarray  # float32 [N, 3], RANKER_HEADS order


def ranker_data(df: pl.DataFrame, table: str = RANKER_TABLE) -> RankerData:
    """Validated arrays of a ranker-examples table."""
    if len(df) == 0:
        raise InputError(f"{table}: table is empty")
    position = int_vector(df, "position", table)
    if (position < 0).any():
        raise InputError(f"{table}: column 'position' has negative values")
    return RankerData(
        x=float_matrix(df, "x", table),
        position=position,
        labels=label_matrix(df, LABEL_COLUMNS, table),
    )


@dataclass
class RankerResult:
    model: MMoE  # best epoch by validation loss
    serving: RankerServing  # model + Platt fitted on the validation split
    train_loss: list[float]  # mean BCE over heads, per epoch
    valid_loss: list[float]
    best_epoch: int
    params: RankerParams


def mean_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE per head, averaged over heads (each head counts the same)."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(dim=0).mean()


@torch.no_grad()
def _validation_loss(model: MMoE, data: RankerData) -> float:
    logits = predict(model, data.x, data.position)
    return float(mean_bce(torch.from_numpy(logits), torch.from_numpy(data.labels)))


def train_ranker(
    train_df: pl.DataFrame,
    valid_df: pl.DataFrame,
    cfg: TrainConfig,
    progress: bool = True,
    params: RankerParams | None = None,
) -> RankerResult:
    """Train on ``train_df``; pick the epoch with the best validation loss; fit Platt on valid."""
    params = params or RankerParams()
    generator = prepare_torch(cfg)
    train = ranker_data(train_df, f"{RANKER_TABLE} (train)")
    valid = ranker_data(valid_df, f"{RANKER_TABLE} (valid)")
    if valid.x.shape[1] != train.x.shape[1]:
        raise InputError(
            f"{RANKER_TABLE} (valid): column 'x' has width {valid.x.shape[1]}, "
            f"train has {train.x.shape[1]}"
        )
    spec = RankerSpec(
        input_dim=train.x.shape[1],
        n_experts=params.n_experts,
        expert_dim=params.expert_dim,
        tower_dim=params.tower_dim,
        n_positions=params.n_positions,
    )
    model = MMoE(spec)
    model.x_mean.copy_(torch.from_numpy(train.x.mean(axis=0)))
    model.x_std.copy_(torch.from_numpy(train.x.std(axis=0) + 1e-6))
    position_params = list(model.position_bias.parameters())
    other_params = [p for n, p in model.named_parameters() if not n.startswith("position_bias.")]
    groups: list[dict[str, Any]] = [
        {"params": other_params},
        {"params": position_params, "lr": params.learning_rate * params.position_lr_scale},
    ]
    optimizer = torch.optim.Adam(groups, lr=params.learning_rate, weight_decay=params.weight_decay)
    x, pos, y = map(torch.from_numpy, (train.x, train.position, train.labels))
    train_loss: list[float] = []
    valid_loss: list[float] = []
    best_state, best_epoch = copy.deepcopy(model.state_dict()), -1
    for epoch in range(params.epochs):
        model.train()
        total, batches = 0.0, 0
        desc = f"ranker epoch {epoch + 1}/{params.epochs}"
        for idx in minibatches(x.shape[0], params.batch_size, generator, progress, desc):
            loss = mean_bce(model(x[idx], pos[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        train_loss.append(total / max(batches, 1))
        valid_loss.append(_validation_loss(model, valid))
        if best_epoch < 0 or valid_loss[-1] < valid_loss[best_epoch]:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    model.eval()
    platt = fit_platt_heads(predict(model, valid.x).astype(np.float64), valid.labels)
    return RankerResult(
        model=model,
        serving=RankerServing(model, platt).eval(),
        train_loss=train_loss,
        valid_loss=valid_loss,
        best_epoch=best_epoch,
        params=params,
    )
