"""An LRU of fixed-width vectors kept in one matrix, so hits are gathered in one numpy take.

Only the id → slot map is a Python dict (an LRU needs per-key recency); the vectors never
leave the preallocated matrix, and evicted slots are reused. Used from the event loop only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np


class VectorLRU:
    """Most recently used ``capacity`` vectors of width ``dim`` by integer id."""

    def __init__(self, capacity: int, dim: int) -> None:
        if capacity < 0:
            raise ValueError(f"lru_size must be >= 0, got {capacity}")
        self.capacity = capacity
        self._rows = np.zeros((capacity, dim), dtype=np.float32)
        self._slot: OrderedDict[int, int] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slot)

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def lookup(self, ids: Sequence[int]) -> np.ndarray:
        """int64 slot per id (-1 = miss); hits become most recently used."""
        slots = np.full(len(ids), -1, dtype=np.int64)
        touch = self._slot.move_to_end
        for i, vid in enumerate(ids):
            slot = self._slot.get(vid)
            if slot is not None:
                slots[i] = slot
                touch(vid)
        n_hit = int((slots >= 0).sum())
        self.hits += n_hit
        self.misses += len(ids) - n_hit
        return slots

    def take(self, slots: np.ndarray) -> np.ndarray:
        return self._rows[slots]

    def insert(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Store ``rows`` (len(ids), dim), evicting the least recently used."""
        if self.capacity == 0:
            return
        ids, rows = ids[-self.capacity :], rows[-self.capacity :]
        slots = np.empty(len(ids), dtype=np.int64)
        for i, vid in enumerate(ids):
            slot = self._slot.get(vid)
            if slot is None:
                if len(self._slot) < self.capacity:
                    slot = len(self._slot)
                else:
                    _, slot = self._slot.popitem(last=False)
            self._slot[vid] = slot
            self._slot.move_to_end(vid)
            slots[i] = slot
        self._rows[slots] = rows
