"""Packed codec: exact round trips, and blobs from elsewhere are refused, never misread."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vidrec.features.codec import (
    HEADER_SIZE,
    CorruptValue,
    SpecMismatch,
    pack,
    pack_many,
    unpack,
    unpack_many,
)
from vidrec.features.spec import FeatureField, FeatureSpec

SPEC = FeatureSpec("t", 1, (FeatureField("a", 3), FeatureField("b", 4)))
OTHER_VERSION = FeatureSpec("t", 2, SPEC.fields)
OTHER_DIM = FeatureSpec("t", 1, (FeatureField("a", 3), FeatureField("b", 5)))

floats = st.floats(width=32, allow_nan=False)
timestamps = st.integers(min_value=-(2**62), max_value=2**62)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (SPEC.dim,), elements=floats), timestamps)
def test_round_trip_one(values: np.ndarray, ts: int) -> None:
    blob = pack(SPEC, values, ts)
    back, updated = unpack(SPEC, blob)
    assert updated == ts
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, values)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=12).flatmap(
        lambda n: st.tuples(
            arrays(np.float32, (n, SPEC.dim), elements=floats),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    ),
    timestamps,
)
def test_round_trip_many_with_missing(data: tuple[np.ndarray, list[bool]], ts: int) -> None:
    matrix, missing = data
    blobs: list[bytes | None] = list(pack_many(SPEC, matrix, ts))
    for i, gone in enumerate(missing):
        if gone:
            blobs[i] = None
    values, updated, present = unpack_many(SPEC, blobs)
    np.testing.assert_array_equal(present, ~np.array(missing, dtype=bool))
    np.testing.assert_array_equal(values[present], matrix[present])
    assert (values[~present] == 0).all()
    assert (updated[present] == ts).all() and (updated[~present] == -1).all()


def test_pack_many_matches_pack_row_by_row() -> None:
    matrix = np.arange(3 * SPEC.dim, dtype=np.float32).reshape(3, SPEC.dim)
    assert pack_many(SPEC, matrix, 5) == [pack(SPEC, row, 5) for row in matrix]
    assert len(pack(SPEC, matrix[0], 5)) == HEADER_SIZE + 4 * SPEC.dim


def test_pack_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match=r"\(n, 7\)"):
        pack_many(SPEC, np.zeros((2, 6), np.float32), 0)


def test_other_spec_is_a_mismatch() -> None:
    blob = pack(OTHER_VERSION, np.ones(SPEC.dim, np.float32), 1)
    with pytest.raises(SpecMismatch, match="spec hash"):
        unpack(SPEC, blob)
    with pytest.raises(SpecMismatch):
        unpack(SPEC, pack(OTHER_DIM, np.ones(OTHER_DIM.dim, np.float32), 1))


def test_mismatch_is_reported_at_its_index() -> None:
    good = pack(SPEC, np.ones(SPEC.dim, np.float32), 1)
    bad = pack(OTHER_VERSION, np.ones(SPEC.dim, np.float32), 1)
    with pytest.raises(SpecMismatch, match="#2"):
        unpack_many(SPEC, [good, None, bad])


def test_same_hash_but_wrong_dim_field_is_a_mismatch() -> None:
    blob = bytearray(pack(SPEC, np.ones(SPEC.dim, np.float32), 1))
    struct.pack_into("<I", blob, 24, SPEC.dim + 1)
    with pytest.raises(SpecMismatch, match="dim"):
        unpack(SPEC, bytes(blob))


@pytest.mark.parametrize("keep", [0, 3, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_truncated_blob_is_corrupt(keep: int) -> None:
    blob = pack(SPEC, np.ones(SPEC.dim, np.float32), 1)
    with pytest.raises(CorruptValue):
        unpack(SPEC, blob[:keep])


def test_padded_blob_is_corrupt() -> None:
    blob = pack(SPEC, np.ones(SPEC.dim, np.float32), 1)
    with pytest.raises(CorruptValue, match="truncated or padded"):
        unpack(SPEC, blob + b"\0\0\0\0")


def test_bad_magic_and_format_are_corrupt() -> None:
    blob = pack(SPEC, np.ones(SPEC.dim, np.float32), 1)
    with pytest.raises(CorruptValue, match="magic"):
        unpack(SPEC, b"XXXX" + blob[4:])
    with pytest.raises(CorruptValue, match="format"):
        unpack(SPEC, blob[:4] + struct.pack("<H", 99) + blob[6:])
    with pytest.raises(CorruptValue):
        unpack(SPEC, b"\x00" * len(blob))


def test_errors_are_value_errors() -> None:
    assert issubclass(SpecMismatch, ValueError) and issubclass(CorruptValue, ValueError)
