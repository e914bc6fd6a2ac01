"""Where each id sits in an ascending id column: one memory read per id where ids are dense.

Serving looks up hundreds of candidate ids per request in million-row columns (the catalogue,
the item-item lists). A binary search touches ~20 cache lines per id; on a busy node those are
cache misses, and at 1M videos the lookups of one home feed cost about a millisecond. Ids that
are dense enough (the largest below :data:`DENSE_FACTOR` × the count) get a direct table
instead, built once per column: one read per id, 4 bytes per possible id.
"""

from __future__ import annotations

import numpy as np

DENSE_FACTOR = 4
"""A direct table is used while ``max id < DENSE_FACTOR * len(ids)`` (at most 16 B per row)."""
DENSE_FLOOR = 1 << 16
"""... or while ``max id < DENSE_FLOOR`` (small columns: a 256 KiB table at most)."""


class Positions:
    """``find(ids) -> (pos, found)`` over ``sorted_ids`` (strictly ascending int64)."""

    def __init__(self, sorted_ids: np.ndarray) -> None:
        self.sorted_ids = sorted_ids
        n = sorted_ids.size
        self._table: np.ndarray | None = None
        if n and n < 2**31 and sorted_ids[0] >= 0:
            top = int(sorted_ids[-1])
            if top < max(DENSE_FACTOR * n, DENSE_FLOOR):
                self._table = np.full(top + 1, -1, dtype=np.int32)
                self._table[sorted_ids] = np.arange(n, dtype=np.int32)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pos, found)`` per id; ``pos`` is a valid index (0 when the column is empty) and
        means nothing where ``found`` is False."""
        ids = np.asarray(ids, dtype=np.int64)
        n = self.sorted_ids.size
        if n == 0:
            return np.zeros(ids.size, np.int64), np.zeros(ids.size, bool)
        table = self._table
        if table is not None:
            inside = (ids >= 0) & (ids < table.size)
            pos = table[np.where(inside, ids, 0)].astype(np.int64)
            found = inside & (pos >= 0)
            return np.where(found, pos, 0), found
        pos = np.minimum(np.searchsorted(self.sorted_ids, ids), n - 1)
        return pos, self.sorted_ids[pos] == ids
