"""Positions: a direct table for dense ids, a binary search for sparse ones — the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.contracts.positions import Positions


def reference(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Membership and index by a plain dict: what ``find`` must agree with."""
    where = {int(v): i for i, v in enumerate(sorted_ids)}
    found = np.array([int(i) in where for i in ids], dtype=bool)
    pos = np.array([where.get(int(i), -1) for i in ids], dtype=np.int64)
    return pos, found


@pytest.mark.parametrize(
    "column",
    [
        np.arange(0, 5000, 3, dtype=np.int64),  # dense: a direct table
        np.array([5, 2**40, 2**50], dtype=np.int64),  # sparse: binary search
        np.array([-7, 0, 9], dtype=np.int64),  # negative ids: binary search
    ],
    ids=["dense", "sparse", "negative"],
)
def test_find_agrees_with_a_dict_for_known_unknown_and_out_of_range_ids(
    column: np.ndarray,
) -> None:
    rng = np.random.default_rng(0)
    probe = np.concatenate([
        rng.choice(column, 50), [-1, -(2**62), 2**62, int(column[-1]) + 1, 4, 6],
    ]).astype(np.int64)  # fmt: skip
    pos, found = Positions(column).find(probe)
    want_pos, want_found = reference(column, probe)
    assert (found == want_found).all()
    assert (pos[found] == want_pos[found]).all()
    assert ((pos >= 0) & (pos < column.size)).all()  # always a valid index to gather with


def test_a_dense_column_uses_a_table_and_a_sparse_one_does_not() -> None:
    assert Positions(np.arange(100_000, dtype=np.int64))._table is not None
    assert Positions(np.array([1, 2**40], dtype=np.int64))._table is None


def test_an_empty_column_finds_nothing() -> None:
    pos, found = Positions(np.zeros(0, np.int64)).find(np.array([1, 2], np.int64))
    assert not found.any() and pos.tolist() == [0, 0]
