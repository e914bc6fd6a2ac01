"""Train / valid / test splits, named by one spec string (``--split``, ``train.eval_split``).

A single "last calendar day" split suits a simulated log, not every dataset: public datasets
are judged by each user's last interactions (leave-last-out), a global time cut, or the split
their authors ship. Every kind carves ``valid`` out of the remaining rows with the same rule,
so the ranker can pick its epoch and calibrate without seeing the test rows:

- ``last-day``: the last day is test, the day before valid (the original behaviour);
- ``per-user:F``: each user's last ``floor(F·n)`` rows by time are test, then the last
  ``floor(F·n')`` of the rest valid (users with fewer than 1/F rows stay in train);
- ``global:Q``: rows after the Q time quantile are test, rows after the Q quantile of the rest
  valid;
- ``dataset``: the table's own ``split`` column (``train``/``valid``/``test``); without any
  ``valid`` rows, the rows of ``train`` after its 0.9 time quantile become valid;
- ``auto``: ``dataset`` when the table has a ``split`` column, else ``last-day``.

Each table is split by its own rows (impressions for the ranker, clicks for retrieval), as
the original day split did.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from vidrec.errors import InputError
from vidrec.models.frames import require_columns
from vidrec.models.metrics import split_by_day

SPLIT_OPTION = "--split"
SPLIT_KINDS = ("auto", "last-day", "per-user", "global", "dataset")
DATASET_VALID_QUANTILE = 0.9
_PARTS = ("train", "valid", "test")
_USAGE = (
    "use last-day, per-user:F (each user's last F of rows by time, 0 < F < 1), "
    "global:Q (rows after the Q time quantile, 0 < Q < 1), dataset (the data's own 'split' "
    "column) or auto"
)


@dataclass(frozen=True)
class SplitSpec:
    kind: str  # one of SPLIT_KINDS
    fraction: float | None = None  # per-user: test share; global: quantile

    def __str__(self) -> str:
        return self.kind if self.fraction is None else f"{self.kind}:{self.fraction:g}"

    def resolve(self, df: pl.DataFrame) -> SplitSpec:
        """``auto`` becomes the kind actually used on ``df``; the manifest records that one."""
        if self.kind != "auto":
            return self
        return SplitSpec("dataset" if "split" in df.columns else "last-day")


def parse_split(text: str) -> SplitSpec:
    """``last-day`` | ``per-user:F`` | ``global:Q`` | ``dataset`` | ``auto``, validated."""
    kind, sep, arg = text.strip().partition(":")
    if kind not in SPLIT_KINDS:
        raise InputError(f"{SPLIT_OPTION}: unknown split {text!r}; {_USAGE}")
    if kind in ("per-user", "global"):
        try:
            fraction = float(arg)
        except ValueError:
            msg = f"{SPLIT_OPTION}: {text!r} needs a number after ':'; {_USAGE}"
            raise InputError(msg) from None
        if not 0.0 < fraction < 1.0:
            raise InputError(f"{SPLIT_OPTION}: {text!r}: the number must be in (0, 1); {_USAGE}")
        return SplitSpec(kind, fraction)
    if sep:
        raise InputError(f"{SPLIT_OPTION}: {text!r}: {kind} takes no ':' argument; {_USAGE}")
    return SplitSpec(kind)


def split_examples(
    df: pl.DataFrame, spec: SplitSpec, table: str = "examples"
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(train, valid, test)`` of ``df`` under ``spec``; an empty train or test is an error."""
    spec = spec.resolve(df)
    if spec.kind == "last-day":
        return split_by_day(df, table)
    if spec.kind == "dataset":
        part = _dataset_parts(df, table)
    elif spec.kind == "global":
        require_columns(df, ("ts",), table)
        part = _global_parts(df, spec.fraction or 0.0)
    else:
        require_columns(df, ("user_id", "ts"), table)
        part = _per_user_parts(df, spec.fraction or 0.0)
    train, valid, test = (df.filter(part == p) for p in _PARTS)
    for name, rows in (("train", train), ("test", test)):
        if rows.is_empty():
            raise InputError(
                f"{table}: {SPLIT_OPTION} {spec} leaves no {name} rows ({df.height} rows in all)"
            )
    return train, valid, test


def _global_parts(df: pl.DataFrame, q: float) -> pl.Series:
    ts = df["ts"]
    test_cut = ts.quantile(q, interpolation="lower")
    valid_cut = ts.filter(ts <= test_cut).quantile(q, interpolation="lower")
    return df.select(
        pl.when(pl.col("ts") > test_cut)
        .then(pl.lit("test"))
        .when(pl.col("ts") > valid_cut)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
    ).to_series()


def _per_user_parts(df: pl.DataFrame, f: float) -> pl.Series:
    # Ordinal rank by time within each user (ties broken by row order) decides the part.
    n = pl.len().over("user_id")
    rank = pl.col("ts").rank("ordinal").over("user_id") - 1
    n_test = (n * f).floor().cast(pl.Int64)
    n_valid = ((n - n_test) * f).floor().cast(pl.Int64)
    return df.select(
        pl.when(rank >= n - n_test)
        .then(pl.lit("test"))
        .when(rank >= n - n_test - n_valid)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
    ).to_series()


def _dataset_parts(df: pl.DataFrame, table: str) -> pl.Series:
    require_columns(df, ("split",), table)
    part = df["split"].cast(pl.String)
    unknown = sorted(set(part.unique().drop_nulls().to_list()) - set(_PARTS))
    if unknown or part.null_count():
        bad = unknown or ["null"]
        raise InputError(f"{table}: column 'split' holds {bad}; expected train, valid, test")
    if (part == "valid").any() or not (part == "train").any():
        return part
    require_columns(df, ("ts",), table)
    ts = df["ts"]
    cut = ts.filter(part == "train").quantile(DATASET_VALID_QUANTILE, interpolation="lower")
    valid = (part == "train") & (ts > cut)
    return pl.select(pl.when(valid).then(pl.lit("valid")).otherwise(part)).to_series()
