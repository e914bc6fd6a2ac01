"""An LRU of fixed-width vectors kept in one matrix, so hits are gathered in one numpy take.

Recency is a tick per slot in a numpy array, not an ordered dict: a lookup of 500 ids is one
C-level ``map`` over the id → slot dict plus one vectorised tick update, where moving each hit
to the end of an ``OrderedDict`` cost more than the rest of hydration. Eviction takes the
least recently used slots by tick, in batches of at least ``capacity // EVICT_FRACTION`` so
the partial sort is paid once per many inserts. Used from the event loop only.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np

EVICT_FRACTION = 16
"""A full cache frees at least 1/16 of its slots at once (the least recently used ones)."""


class VectorLRU:
    """Most recently used ``capacity`` vectors of width ``dim`` by integer id."""

    def __init__(self, capacity: int, dim: int) -> None:
        if capacity < 0:
            raise ValueError(f"lru_size must be >= 0, got {capacity}")
        self.capacity = capacity
        self._rows = np.zeros((capacity, dim), dtype=np.float32)
        self._slot: dict[int, int] = {}
        self._id_of = np.full(capacity, -1, dtype=np.int64)  # id in each slot (-1: free)
        self._used = np.zeros(capacity, dtype=np.int64)  # tick of each slot's last use
        self._tick = 0
        self._free: list[int] = list(range(capacity - 1, -1, -1))  # pop() gives slot 0 first
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
        slots = np.fromiter(map(self._slot.get, ids, repeat(-1)), np.int64, len(ids))
        hit = slots[slots >= 0]
        self._tick += 1
        self._used[hit] = self._tick
        self.hits += hit.size
        self.misses += len(ids) - hit.size
        return slots

    def take(self, slots: np.ndarray) -> np.ndarray:
        return self._rows[slots]

    def insert(self, ids: Sequence[int], rows: np.ndarray) -> None:
        """Store ``rows`` (len(ids), dim), evicting the least recently used."""
        if self.capacity == 0 or len(ids) == 0:
            return
        ids, rows = list(ids[-self.capacity :]), rows[-self.capacity :]
        known = np.fromiter(map(self._slot.get, ids, repeat(-1)), np.int64, len(ids))
        if (known < 0).any():
            new = list(dict.fromkeys(np.asarray(ids)[known < 0].tolist()))
            self._reserve(len(new))
            slots = self._free[-len(new) :]
            del self._free[-len(new) :]
            self._slot.update(zip(new, slots, strict=True))
            known = np.fromiter(map(self._slot.__getitem__, ids), np.int64, len(ids))
        self._id_of[known] = ids
        self._rows[known] = rows
        self._tick += 1
        self._used[known] = self._tick

    def _reserve(self, n: int) -> None:
        """Free at least ``n`` slots, least recently used first."""
        short = n - len(self._free)
        if short <= 0:
            return
        k = min(self.capacity, max(short, self.capacity // EVICT_FRACTION))
        taken = np.flatnonzero(self._id_of >= 0)
        oldest = taken[np.argpartition(self._used[taken], k - 1)[:k]] if k < taken.size else taken
        for vid in self._id_of[oldest].tolist():
            del self._slot[vid]
        self._id_of[oldest] = -1
        self._free.extend(oldest.tolist())
