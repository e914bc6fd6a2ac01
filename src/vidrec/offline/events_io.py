"""Reading and writing event logs (Parquet), with errors that name the file and column.

An event log is one Parquet file or a directory of them (e.g. the lake's hourly partitions).
Every file is checked against ``EVENT_SCHEMA`` before any work starts, so a bad column fails
in seconds with its name instead of minutes later inside a join.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from vidrec.errors import InputError
from vidrec.schema import EVENT_SCHEMA


def _event_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise InputError(f"{path}: no .parquet files in this directory")
        return files
    if not path.exists():
        raise InputError(f"{path}: events file not found")
    return [path]


def _check_file(file: Path) -> None:
    try:
        schema = pl.read_parquet_schema(file)
    except Exception as exc:  # polars raises several types for a corrupt footer
        raise InputError(f"{file}: not a readable Parquet file ({exc}); re-export it") from exc
    for name, dtype in EVENT_SCHEMA.items():
        if name not in schema:
            raise InputError(f"{file}: missing column {name!r} (expected {dtype})")
        if schema[name] != dtype:
            raise InputError(f"{file}: column {name!r} has type {schema[name]}, expected {dtype}")


def read_events(path: Path) -> pl.DataFrame:
    """All events under ``path`` in ``EVENT_SCHEMA`` column order, sorted by ``ts``."""
    files = _event_files(path)
    for file in files:
        _check_file(file)
    try:
        df = pl.concat([pl.read_parquet(f, columns=list(EVENT_SCHEMA)) for f in files])
    except Exception as exc:
        raise InputError(f"{path}: could not read the event data ({exc})") from exc
    if df.height == 0:
        raise InputError(f"{path}: the event log is empty")
    return df.sort("ts", maintain_order=True)


def write_events(events: pl.DataFrame, path: Path) -> Path:
    """Write atomically (temp file, then rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    events.select(list(EVENT_SCHEMA)).write_parquet(tmp, compression="zstd")
    tmp.replace(path)
    return path
