"""Reading and writing event logs (Parquet), with errors that name the file and column.

The lake writer writes this format and every offline job reads it, so it lives with the event
path. An event log is one Parquet file or a directory of them (e.g. the lake's hourly
partitions).
Every file is checked against ``EVENT_SCHEMA`` before any work starts, so a bad column fails
in seconds with its name instead of minutes later inside a join.

Privacy (docs/operations.md, "Security and privacy"): lake files may be encrypted (Parquet
modular encryption, :mod:`vidrec.security.lake_crypto`) and may carry pseudonymous user ids
(file metadata ``vidrec.user_ids = hmac-sha256-63:<salt fingerprint>``). Reading decrypts with
the configured lake key — or fails naming the setting — and reports which id space the log is
in (:class:`EventLog`); a directory mixing id spaces is refused. Paths under a directory whose
name starts with ``_`` (the lake's ``_tombstones/``) are not event files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from vidrec.errors import InputError
from vidrec.schema import EVENT_SCHEMA
from vidrec.security.lake_crypto import KEY_ENV, LakeCrypto, LakeKeyError, is_encrypted

USER_IDS_META = b"vidrec.user_ids"  # "" / absent = raw ids; else "<scheme>:<fingerprint>"


@dataclass(frozen=True)
class EventLog:
    events: pl.DataFrame
    user_ids: str  # "" = raw user ids; else the pseudonymisation label of every file
    encrypted: bool


def configured_crypto() -> LakeCrypto | None:
    """The lake key of the environment (``VIDREC_EVENTS__LAKE_KEY``), or None."""
    from vidrec.config import load_config

    try:
        return LakeCrypto.from_secret(load_config().events.lake_key)
    except LakeKeyError as exc:
        raise InputError(str(exc)) from None


def _event_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            f
            for f in path.rglob("*.parquet")
            if not any(p.startswith("_") for p in f.relative_to(path).parts[:-1])
        )
        if not files:
            raise InputError(f"{path}: no .parquet files in this directory")
        return files
    if not path.exists():
        raise InputError(f"{path}: events file not found")
    return [path]


def _check_schema(file: Path, schema: pl.Schema | dict[str, pl.DataType]) -> None:
    for name, dtype in EVENT_SCHEMA.items():
        if name not in schema:
            raise InputError(f"{file}: missing column {name!r} (expected {dtype})")
        if schema[name] != dtype:
            raise InputError(f"{file}: column {name!r} has type {schema[name]}, expected {dtype}")


def _open(file: Path, crypto: LakeCrypto | None) -> tuple[pl.Schema, str, bool]:
    """Schema, user-id label and encryption of one file, from its footer."""
    encrypted = is_encrypted(file)
    if encrypted and crypto is None:
        raise InputError(
            f"{file}: encrypted (Parquet modular encryption); set {KEY_ENV} to the lake key"
            " to read it"
        )
    try:
        props = crypto.decryption_properties() if encrypted and crypto else None
        arrow_schema = pq.ParquetFile(file, decryption_properties=props).schema_arrow
        schema = pl.from_arrow(arrow_schema.empty_table()).schema  # type: ignore[union-attr]
    except LakeKeyError as exc:
        raise InputError(f"{file}: {exc}; check {KEY_ENV}") from None
    except Exception as exc:  # pyarrow raises several types for a corrupt footer
        raise InputError(f"{file}: not a readable Parquet file ({exc}); re-export it") from exc
    label = (arrow_schema.metadata or {}).get(USER_IDS_META, b"").decode()
    return schema, label, encrypted


def _read(file: Path, encrypted: bool, crypto: LakeCrypto | None) -> pl.DataFrame:
    if not encrypted or crypto is None:
        return pl.read_parquet(file, columns=list(EVENT_SCHEMA))
    frame = pl.from_arrow(crypto.read(file, columns=list(EVENT_SCHEMA)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def read_event_log(path: Path, crypto: LakeCrypto | None = None) -> EventLog:
    """All events under ``path`` (``EVENT_SCHEMA`` column order, sorted by ``ts``), decrypted
    with ``crypto`` (default: the configured lake key), and the id space they are in."""
    crypto = crypto if crypto is not None else configured_crypto()
    files = _event_files(path)
    opened = []
    for file in files:
        schema, label, encrypted = _open(file, crypto)
        _check_schema(file, schema)
        opened.append((file, label, encrypted))
    labels = {label for _, label, _ in opened}
    if len(labels) > 1:
        first = {label: f for f, label, _ in reversed(opened)}
        described = ", ".join(f"{lb or 'raw ids'} ({f.name})" for lb, f in sorted(first.items()))
        raise InputError(
            f"{path}: files disagree on the user-id space: {described}; a lake is written with"
            " one VIDREC_EVENTS__ID_SALT — train on files of one id space"
        )
    try:
        df = pl.concat([_read(f, enc, crypto) for f, _, enc in opened])
    except LakeKeyError as exc:
        raise InputError(f"{path}: {exc}; check {KEY_ENV}") from None
    except Exception as exc:
        raise InputError(f"{path}: could not read the event data ({exc})") from exc
    if df.height == 0:
        raise InputError(f"{path}: the event log is empty")
    encrypted = any(enc for _, _, enc in opened)
    return EventLog(df.sort("ts", maintain_order=True), labels.pop(), encrypted)


def user_id_space(path: Path, crypto: LakeCrypto | None = None) -> str:
    """The pseudonymisation label of the log at ``path`` ("" = raw ids), from one footer."""
    crypto = crypto if crypto is not None else configured_crypto()
    return _open(_event_files(path)[0], crypto)[1]


def read_events(path: Path, crypto: LakeCrypto | None = None) -> pl.DataFrame:
    """All events under ``path`` in ``EVENT_SCHEMA`` column order, sorted by ``ts``."""
    return read_event_log(path, crypto).events


def read_event_ids(file: Path, crypto: LakeCrypto | None) -> set[str]:
    """The ``event_id`` column of one (possibly encrypted) file."""
    if is_encrypted(file):
        if crypto is None:
            raise InputError(f"{file}: encrypted; set {KEY_ENV} to the lake key")
        return set(crypto.read(file, columns=["event_id"]).column("event_id").to_pylist())
    return set(pl.read_parquet(file, columns=["event_id"])["event_id"])


def write_events(
    events: pl.DataFrame,
    path: Path,
    *,
    crypto: LakeCrypto | None = None,
    user_ids: str = "",
) -> Path:
    """Write atomically (temp file, then rename) so a crash never leaves half a file.

    ``crypto`` encrypts the file; ``user_ids`` (a pseudonymisation label) is recorded in its
    metadata so readers know the id space.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame = events.select(list(EVENT_SCHEMA))
    if crypto is None and not user_ids:
        frame.write_parquet(tmp, compression="zstd")
    else:
        table = frame.to_arrow()
        if user_ids:
            meta = dict(table.schema.metadata or {}) | {USER_IDS_META: user_ids.encode()}
            table = table.replace_schema_metadata(meta)
        if crypto is None:
            pq.write_table(table, tmp, compression="zstd")
        else:
            crypto.write(table, tmp)
    tmp.replace(path)
    return path
