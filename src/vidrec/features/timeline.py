"""Point-in-time aggregates by binary search over sorted prefix sums.

Every offline feature is "a sum over entity e's events with ts < t" for millions of (e, t)
pairs. Sorting the events once by the composite key ``(e, ts)`` and keeping prefix sums turns
each query into one ``searchsorted`` (side="left", so events at exactly ``t`` are excluded) and
one subtraction: the vectorised equivalent of an as-of join with
``allow_exact_matches=False``. A windowed count over ``[t - w, t)`` is the difference of the
prefix at two query times, so 1h/1d/7d/30d windows cost one extra search each.

The time half of the key is the offset from the first event while the log spans less than
2^36 ms (about 2.2 years): one subtraction per query. A longer log or catalogue (decades of
uploads) keys by *rank* among the distinct event times instead: ``e < t`` exactly when
``rank(e) < #{distinct event times < t}``, so the answers are the same at any span, for one
extra binary search per query.
"""

from __future__ import annotations

import numpy as np

TIME_BITS = 36
"""Bits of the key's time half: an offset in ms (2^36 ms is about 2.2 years) or a rank among
distinct event times (2^36 of them)."""
MAX_TIME_KEY = (1 << TIME_BITS) - 1
MAX_ENTITY_ID = (1 << (63 - TIME_BITS)) - 1


def _check_ids(entity: np.ndarray, what: str) -> None:
    if entity.size and (entity.min() < 0 or entity.max() > MAX_ENTITY_ID):
        raise ValueError(f"{what}: ids must lie in 0..{MAX_ENTITY_ID}")


class Timeline:
    """Events of one kind for one entity type, answering sums over ``ts < t`` per entity.

    ``values`` (n, k) are summed; without it only counts are available. ``payload`` columns
    (e.g. the video id of each watch) are kept in key order for "last k before t" gathers.
    """

    def __init__(
        self,
        entity: np.ndarray,
        ts: np.ndarray,
        values: np.ndarray | None = None,
        payload: dict[str, np.ndarray] | None = None,
        what: str = "events",
    ) -> None:
        entity = np.asarray(entity, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.int64)
        _check_ids(entity, what)
        self._base = int(ts.min()) - 1 if ts.size else 0
        # Distinct event times, when the offsets would not fit the key (see module docstring).
        self._times: np.ndarray | None = None
        if ts.size and int(ts.max()) - self._base >= MAX_TIME_KEY:
            self._times = np.unique(ts)
            if self._times.size > MAX_TIME_KEY:
                raise ValueError(f"{what}: more than 2^{TIME_BITS} distinct timestamps")
        keys = self._keys(entity, ts)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.prefix: np.ndarray | None = None
        if values is not None:
            sorted_values = np.asarray(values, dtype=np.float64)[order]
            self.prefix = np.zeros((len(order) + 1, sorted_values.shape[1]), dtype=np.float64)
            np.cumsum(sorted_values, axis=0, out=self.prefix[1:])
        self.payload = {name: col[order] for name, col in (payload or {}).items()}

    def __len__(self) -> int:
        return int(self.keys.size)

    def _keys(self, entity: np.ndarray, ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, dtype=np.int64)
        if self._times is None:
            rel = np.clip(ts - self._base, 0, MAX_TIME_KEY)
        else:
            rel = np.searchsorted(self._times, ts, side="left").astype(np.int64)
        return (np.asarray(entity, dtype=np.int64) << TIME_BITS) | rel

    def position(self, entity: np.ndarray, ts: np.ndarray | int) -> np.ndarray:
        """Index just past entity's last event with ``ts' < ts`` (counts all smaller keys)."""
        _check_ids(np.asarray(entity), "query")
        ts_arr = np.broadcast_to(np.asarray(ts, dtype=np.int64), np.shape(entity))
        return np.searchsorted(self.keys, self._keys(entity, ts_arr), side="left")

    def start(self, entity: np.ndarray) -> np.ndarray:
        """Index of entity's first event (its position at time -inf)."""
        return self.position(entity, np.iinfo(np.int64).min // 2)

    def count_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Events between two positions of the same entity."""
        return (hi - lo).astype(np.float64)

    def sum_between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Summed ``values`` between two positions of the same entity, shape (q, k)."""
        if self.prefix is None:
            raise ValueError("this timeline holds counts only")
        return self.prefix[hi] - self.prefix[lo]

    def last_before(self, name: str, start: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
        """Payload ``name`` of the ``k`` latest events before ``pos``, newest first, -1 padded."""
        offsets = np.arange(k, dtype=np.int64)
        idx = pos[:, None] - 1 - offsets[None, :]
        valid = idx >= start[:, None]
        column = self.payload[name]
        if column.size == 0:
            return np.full((pos.size, k), -1, dtype=np.int64)
        picked = column[np.clip(idx, 0, column.size - 1)]
        return np.where(valid, picked, -1).astype(np.int64)
