"""Packed binary form of one entity's feature vector, as stored in the online store.

Layout (little endian)::

    magic "VRFV" | format u16 | pad u16 | spec hash 8B | updated_at_ms i64 | dim u32 | f32 * dim

The header lets a reader prove the blob was written under the layout it expects: a blob from
another spec, a truncated value or a foreign key raises instead of being misread as floats.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from operator import is_not
from typing import cast

import numpy as np

from vidrec.features.spec import FeatureSpec

MAGIC = b"VRFV"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sHH8sqI")
HEADER_SIZE = _HEADER.size
_HASH = slice(8, 16)
_UPDATED = slice(16, 24)
_DIM = slice(24, 28)


class SpecMismatch(ValueError):
    """The blob is well formed but was written under another feature spec."""


class CorruptValue(ValueError):
    """The blob is not a packed feature vector (bad magic, unknown format, truncated)."""


def _header(spec: FeatureSpec, updated_at_ms: int) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT_VERSION, 0, spec.hash, updated_at_ms, spec.dim)


def blob_size(spec: FeatureSpec) -> int:
    return HEADER_SIZE + 4 * spec.dim


def _as_matrix(spec: FeatureSpec, matrix: np.ndarray) -> np.ndarray:
    if matrix.ndim != 2 or matrix.shape[1] != spec.dim:
        raise ValueError(
            f"pack {spec.name!r}: expected values of shape (n, {spec.dim}), got {matrix.shape}"
        )
    return np.ascontiguousarray(matrix, dtype="<f4")


def pack_many(spec: FeatureSpec, matrix: np.ndarray, updated_at_ms: int) -> list[bytes]:
    """Pack each row of ``matrix`` (n, spec.dim) under one header; one numpy copy, no float loop."""
    rows = _as_matrix(spec, matrix)
    header = np.frombuffer(_header(spec, updated_at_ms), dtype=np.uint8)
    packed = np.empty((rows.shape[0], blob_size(spec)), dtype=np.uint8)
    packed[:, :HEADER_SIZE] = header
    packed[:, HEADER_SIZE:] = rows.view(np.uint8).reshape(rows.shape[0], 4 * spec.dim)
    buf = packed.tobytes()
    width = packed.shape[1]
    return [buf[i : i + width] for i in range(0, len(buf), width)]


def pack(spec: FeatureSpec, values: np.ndarray, updated_at_ms: int) -> bytes:
    """Pack one vector of shape (spec.dim,)."""
    if values.ndim != 1:
        raise ValueError(f"pack {spec.name!r}: expected a vector, got shape {values.shape}")
    return pack_many(spec, values[None, :], updated_at_ms)[0]


def _check_headers(spec: FeatureSpec, rows: np.ndarray, index: np.ndarray) -> None:
    """Validate the header bytes of every row of ``rows`` (n, blob_size) at once: one
    comparison of the fixed bytes on the hot path, the diagnosis only when one is wrong."""
    expected = np.frombuffer(_header(spec, 0), dtype=np.uint8)
    fixed = (rows[:, : _HASH.stop] == expected[: _HASH.stop]).all()
    if fixed and (rows[:, _DIM] == expected[_DIM]).all():
        return
    bad_magic = (rows[:, :6] != expected[:6]).any(axis=1)
    if bad_magic.any():
        raise CorruptValue(
            f"feature blob #{index[np.argmax(bad_magic)]}: bad magic or format version "
            f"(expected {MAGIC!r} format {FORMAT_VERSION})"
        )
    bad_hash = (rows[:, _HASH] != expected[_HASH]).any(axis=1)
    if bad_hash.any():
        i = int(np.argmax(bad_hash))
        raise SpecMismatch(
            f"feature blob #{index[i]}: spec hash {rows[i, _HASH].tobytes().hex()} is not "
            f"{spec.name!r} v{spec.version} ({spec.hash.hex()})"
        )
    bad_dim = (rows[:, _DIM] != expected[_DIM]).any(axis=1)
    if bad_dim.any():
        i = int(np.argmax(bad_dim))
        dim = int(rows[i, _DIM].view("<u4")[0])
        raise SpecMismatch(
            f"feature blob #{index[i]}: dim {dim}, spec {spec.name!r} has {spec.dim}"
        )


def _check_lengths(spec: FeatureSpec, blobs: Sequence[bytes], index: np.ndarray) -> None:
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    wrong = lengths != blob_size(spec)
    if not wrong.any():
        return
    i = int(np.argmax(wrong))
    blob = blobs[i]
    if len(blob) < 4 or blob[:4] != MAGIC:
        raise CorruptValue(f"feature blob #{index[i]}: bad magic {blob[:4]!r}")
    if len(blob) >= HEADER_SIZE:
        # A complete header from another spec is a mismatch, not corruption: say which.
        row = np.frombuffer(blob[:HEADER_SIZE], dtype=np.uint8)[None, :]
        padded = np.zeros((1, blob_size(spec)), dtype=np.uint8)
        padded[:, :HEADER_SIZE] = row
        _check_headers(spec, padded, index[i : i + 1])
    raise CorruptValue(
        f"feature blob #{index[i]}: {len(blob)} bytes, expected {blob_size(spec)} "
        f"for spec {spec.name!r} (truncated or padded)"
    )


def unpack_many(
    spec: FeatureSpec, blobs: Sequence[bytes | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode blobs (None = missing) into ``(values f32 (n, dim), updated_at_ms (n,), present)``.

    Missing rows are zeros with ``updated_at_ms = -1`` and ``present = False``.
    """
    n = len(blobs)
    present = np.fromiter(map(is_not, blobs, repeat(None)), dtype=bool, count=n)
    index = np.flatnonzero(present)
    if index.size == 0:
        return np.zeros((n, spec.dim), np.float32), np.full(n, -1, np.int64), present
    everything = index.size == n  # the usual case: one copy per column, no scatter
    found = cast(Sequence[bytes], blobs) if everything else [b for b in blobs if b is not None]
    _check_lengths(spec, found, index)
    rows = np.frombuffer(b"".join(found), dtype=np.uint8).reshape(len(found), blob_size(spec))
    _check_headers(spec, rows, index)
    found_values = rows[:, HEADER_SIZE:].copy().view("<f4")
    found_updated = rows[:, _UPDATED].copy().view("<i8")[:, 0]
    if everything:
        return found_values, found_updated, present
    values = np.zeros((n, spec.dim), dtype=np.float32)
    updated = np.full(n, -1, dtype=np.int64)
    values[index] = found_values
    updated[index] = found_updated
    return values, updated, present


def unpack(spec: FeatureSpec, blob: bytes) -> tuple[np.ndarray, int]:
    """Decode one blob into ``(values (dim,) f32, updated_at_ms)``."""
    values, updated, _ = unpack_many(spec, [blob])
    return values[0], int(updated[0])
