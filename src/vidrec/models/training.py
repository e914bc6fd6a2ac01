"""The mini-batch plumbing both trainers share: seeding, threads, shuffling, progress."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from vidrec.config import TrainConfig


def prepare_torch(cfg: TrainConfig) -> torch.Generator:
    """Seed every RNG and pin the thread count; return the generator that drives shuffling.

    Same seed + same thread count gives bit-identical weights on CPU.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    return torch.Generator().manual_seed(cfg.seed)


def minibatches(
    n_rows: int,
    batch_size: int,
    generator: torch.Generator | None,
    progress: bool,
    desc: str,
) -> Iterator[torch.Tensor]:
    """Index tensors covering ``range(n_rows)``: shuffled when a generator is given."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = (
        torch.randperm(n_rows, generator=generator)
        if generator is not None
        else torch.arange(n_rows)
    )
    starts = range(0, n_rows, batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False, unit="batch"):
        yield order[start : start + batch_size]
