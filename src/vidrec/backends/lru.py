"""An LRU of fixed-width vectors kept in one matrix, so hits are gathered in one numpy take.

Recency is a tick per slot in a numpy array, not an ordered dict. Which slot holds an id is a
numpy table indexed by the id itself for ids below :data:`DENSE_IDS` (grown to the largest id
seen), and a dict only for ids beyond it: a lookup of 500 candidates is one vectorised gather,
where 500 dict probes into a 50,000-entry dict were cache misses that cost a quarter of a
millisecond per request at 1M videos. Eviction takes the least recently used slots by tick, in
batches of at least ``capacity // EVICT_FRACTION`` so the partial sort is paid once per many
inserts. Used from the event loop only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EVICT_FRACTION = 16
"""A full cache frees at least 1/16 of its slots at once (the least recently used ones)."""
DENSE_IDS = 1 << 24
"""Ids in [0, DENSE_IDS) map to slots through a table (4 bytes per id up to the largest seen,
at most 64 MiB); any other id through a dict."""


class VectorLRU:
    """Most recently used ``capacity`` vectors of width ``dim`` by integer id."""

    def __init__(self, capacity: int, dim: int) -> None:
        if capacity < 0:
            raise ValueError(f"lru_size must be >= 0, got {capacity}")
        self.capacity = capacity
        self._rows = np.zeros((capacity, dim), dtype=np.float32)
        self._table = np.full(0, -1, dtype=np.int32)  # slot of each dense id (-1: absent)
        self._sparse: dict[int, int] = {}  # slot of each id outside [0, DENSE_IDS)
        self._id_of = np.zeros(capacity, dtype=np.int64)  # id in each held slot
        self._held = np.zeros(capacity, dtype=bool)
        self._used = np.zeros(capacity, dtype=np.int64)  # tick of each slot's last use
        self._tick = 0
        # Free slots as a stack: the top ``_n_free`` entries, slot 0 handed out first.
        self._all_free = np.arange(capacity - 1, -1, -1, dtype=np.int64)
        self._free = self._all_free.copy()
        self._n_free = capacity
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return self.capacity - self._n_free

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def clear(self) -> None:
        """Forget every entry (the allocations stay: a cleared cache is as fast as a used one)."""
        held = np.flatnonzero(self._held)
        self._map(self._id_of[held], np.full(held.size, -1, dtype=np.int64))
        self._held[:] = False
        self._free[:] = self._all_free
        self._n_free = self.capacity

    def lookup(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """int64 slot per id (-1 = miss); hits become most recently used."""
        slots = self._slots(np.asarray(ids, dtype=np.int64))
        hit = slots[slots >= 0]
        self._tick += 1
        self._used[hit] = self._tick
        self.hits += hit.size
        self.misses += slots.size - hit.size
        return slots

    def take(self, slots: np.ndarray) -> np.ndarray:
        return self._rows[slots]

    def insert(self, ids: Sequence[int] | np.ndarray, rows: np.ndarray) -> None:
        """Store ``rows`` (len(ids), dim), evicting the least recently used."""
        if self.capacity == 0 or len(ids) == 0:
            return
        ids_a = np.asarray(ids, dtype=np.int64)[-self.capacity :]
        rows = rows[-self.capacity :]
        slots = self._slots(ids_a)
        if (slots < 0).any():
            new = np.unique(ids_a[slots < 0])
            kept = np.unique(slots[slots >= 0])
            self._tick += 1
            self._used[kept] = self._tick  # the batch's own cached ids are not evicted for it
            self._reserve(new.size, kept.size)
            self._n_free -= new.size
            given = self._free[self._n_free : self._n_free + new.size].copy()
            self._map(new, given)
            self._id_of[given] = new
            self._held[given] = True
            slots = self._slots(ids_a)
        self._rows[slots] = rows
        self._tick += 1
        self._used[slots] = self._tick

    # -- id -> slot ------------------------------------------------------------------------

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        slots = np.full(ids.size, -1, dtype=np.int64)
        table = self._table
        dense = (ids >= 0) & (ids < table.size)
        slots[dense] = table[ids[dense]]
        if self._sparse:
            other = (ids < 0) | (ids >= DENSE_IDS)
            if other.any():
                get = self._sparse.get
                slots[other] = [get(i, -1) for i in ids[other].tolist()]
        return slots

    def _map(self, ids: np.ndarray, slots: np.ndarray) -> None:
        """Point ``ids`` at ``slots`` (-1 forgets them)."""
        dense = (ids >= 0) & (ids < DENSE_IDS)
        if dense.any():
            top = int(ids[dense].max())
            if top >= self._table.size:  # grow geometrically: a few copies in a lifetime
                size = min(DENSE_IDS, max(top + 1, 2 * self._table.size, 1024))
                grown = np.full(size, -1, dtype=np.int32)
                grown[: self._table.size] = self._table
                self._table = grown
            self._table[ids[dense]] = slots[dense]
        for i, s in zip(ids[~dense].tolist(), slots[~dense].tolist(), strict=True):
            if s < 0:
                self._sparse.pop(i, None)
            else:
                self._sparse[i] = s

    def _reserve(self, n: int, keep: int = 0) -> None:
        """Free at least ``n`` slots, least recently used first, sparing the ``keep`` most
        recently used."""
        short = n - self._n_free
        if short <= 0:
            return
        taken_n = self.capacity - self._n_free
        k = min(taken_n - keep, max(short, self.capacity // EVICT_FRACTION))
        taken = np.flatnonzero(self._held)
        oldest = taken[np.argpartition(self._used[taken], k - 1)[:k]] if k < taken.size else taken
        self._map(self._id_of[oldest], np.full(oldest.size, -1, dtype=np.int64))
        self._held[oldest] = False
        self._free[self._n_free : self._n_free + oldest.size] = oldest
        self._n_free += oldest.size
