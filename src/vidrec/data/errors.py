"""The one error type for unusable input data, so callers can tell bad data from bugs."""

from __future__ import annotations

from pathlib import Path

from vidrec.errors import InputError

RESTORE_HINT = "restore data/kuairec from the repository (see data/kuairec/README.md)"


class DatasetError(InputError):
    """A dataset file is missing or lacks what vidrec needs; the message names file and column."""


def missing_file(path: Path) -> DatasetError:
    return DatasetError(f"{path}: file not found; {RESTORE_HINT}")


def missing_column(path: Path, column: str) -> DatasetError:
    return DatasetError(f"{path}: column {column!r} is missing; {RESTORE_HINT}")


def bad_value(path: Path, column: str, detail: str) -> DatasetError:
    return DatasetError(f"{path}: column {column!r}: {detail}; {RESTORE_HINT}")
