"""Load a snapshot table (id + vector) into an online store, packed, in batches."""

from __future__ import annotations

import numpy as np
import polars as pl
from rich.progress import Progress

from vidrec.features.codec import pack_many
from vidrec.features.spec import FeatureSpec
from vidrec.features.stores import OnlineStore


def _id_column(table: pl.DataFrame) -> str:
    candidates = [c for c in table.columns if c.endswith("_id")]
    if len(candidates) != 1:
        raise ValueError(f"materialize: expected one '<entity>_id' column, found {candidates}")
    return candidates[0]


def _vectors(table: pl.DataFrame, spec: FeatureSpec) -> np.ndarray:
    if "vector" not in table.columns:
        raise ValueError(f"materialize: missing column 'vector' (has {table.columns})")
    dtype = table.schema["vector"]
    if not isinstance(dtype, pl.Array) or dtype.size != spec.dim:
        raise ValueError(
            f"materialize: column 'vector' has type {dtype}, expected Array(Float32, {spec.dim}) "
            f"for spec {spec.name!r}"
        )
    return table["vector"].to_numpy().reshape(table.height, spec.dim)


def materialize(
    table: pl.DataFrame,
    spec: FeatureSpec,
    store: OnlineStore,
    entity: str,
    updated_at_ms: int,
    batch_size: int = 500,
    progress: bool = True,
) -> int:
    """Pack ``table.vector`` under ``spec`` and write it to ``store``; returns rows written."""
    if batch_size < 1:
        raise ValueError(f"materialize: batch_size must be >= 1, got {batch_size}")
    ids = table[_id_column(table)].to_numpy()
    vectors = _vectors(table, spec)
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"materialise {entity}", total=table.height)
        for start in range(0, table.height, batch_size):
            stop = min(start + batch_size, table.height)
            blobs = pack_many(spec, vectors[start:stop], updated_at_ms)
            store.put_many(entity, ids[start:stop].tolist(), blobs)
            bar.advance(task, stop - start)
    return table.height
