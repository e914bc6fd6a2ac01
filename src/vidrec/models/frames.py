"""Turn the documented training tables into numpy arrays, failing loudly on bad layouts.

Every error names the table and the column so a broken upstream stage is found at once.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from vidrec.errors import InputError


def require_columns(df: pl.DataFrame, columns: tuple[str, ...], table: str) -> None:
    """Raise ``ValueError`` naming the first column of ``columns`` missing from ``df``."""
    for name in columns:
        if name not in df.columns:
            raise InputError(f"{table}: missing column {name!r} (has {df.columns})")


def float_matrix(df: pl.DataFrame, column: str, table: str) -> np.ndarray:
    """A fixed-width ``Array(Float32, D)`` column as a C-contiguous float32 ``[N, D]`` array."""
    require_columns(df, (column,), table)
    dtype = df.schema[column]
    if not isinstance(dtype, pl.Array):
        raise InputError(f"{table}: column {column!r} has type {dtype}, expected Array(Float32, D)")
    values = df[column].to_numpy()
    if values.ndim != 2:
        raise InputError(f"{table}: column {column!r} must be a 1-D array per row, got {dtype}")
    values = np.array(values, dtype=np.float32, order="C")  # writable copy for torch
    if not np.isfinite(values).all():
        raise InputError(f"{table}: column {column!r} contains NaN or infinite values")
    return values


def int_matrix(df: pl.DataFrame, column: str, table: str) -> np.ndarray:
    """A fixed-width integer ``Array`` column (e.g. ``history``) as an int64 ``[N, H]`` array."""
    require_columns(df, (column,), table)
    dtype = df.schema[column]
    if not isinstance(dtype, pl.Array):
        raise InputError(f"{table}: column {column!r} has type {dtype}, expected Array(Int64, H)")
    values = df[column].to_numpy()
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
        raise InputError(f"{table}: column {column!r} must hold integer arrays, got {dtype}")
    return np.array(values, dtype=np.int64, order="C")


def int_vector(df: pl.DataFrame, column: str, table: str) -> np.ndarray:
    """An integer column as int64, rejecting nulls."""
    require_columns(df, (column,), table)
    series = df[column]
    if series.null_count():
        raise InputError(f"{table}: column {column!r} has {series.null_count()} null values")
    if not series.dtype.is_integer():
        raise InputError(f"{table}: column {column!r} has type {series.dtype}, expected integers")
    return np.array(series.to_numpy(), dtype=np.int64)


def label_matrix(df: pl.DataFrame, columns: tuple[str, ...], table: str) -> np.ndarray:
    """Binary outcome columns stacked as float32 ``[N, len(columns)]``; values must be 0/1."""
    labels = np.stack([int_vector(df, c, table) for c in columns], axis=1)
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        column = columns[int(np.argmax(bad.any(axis=0)))]
        raise InputError(f"{table}: column {column!r} must be 0/1")
    return labels.astype(np.float32)
