"""Hyper-parameters of the models, separate from ``TrainConfig`` (seed, threads, gate margin).

Defaults are sized for the demo: ~1-2M ranker rows and ~150k retrieval rows train in a few
minutes on 2 CPU cores (large batches, few epochs). Each dataclass is saved next to the
weights so that :func:`vidrec.models.persist.load_models` rebuilds the same modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TwoTowerParams:
    epochs: int = 3
    batch_size: int = 2048
    learning_rate: float = 3e-3
    hidden_dim: int = 128
    temperature: float = 0.05  # logits = cosine / temperature
    n_creator_buckets: int = 4096  # creators are hashed so unseen creators still embed
    weight_decay: float = 0.0


@dataclass(frozen=True)
class RankerParams:
    epochs: int = 3
    batch_size: int = 4096
    learning_rate: float = 2e-3
    n_experts: int = 4
    expert_dim: int = 64
    tower_dim: int = 32
    n_positions: int = 64  # positions at or beyond this share the last bias slot
    # The position tower has few parameters and a large effect: let it learn faster.
    position_lr_scale: float = 10.0
    weight_decay: float = 0.0
