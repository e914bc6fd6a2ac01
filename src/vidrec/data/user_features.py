"""Encode KuaiRec ``user_features`` into the fixed-width ``static`` vector every model reads.

The encoding is a fixed spec, not learned from the data, so ``USER_STATIC_DIM`` is a constant
that serving and training agree on:

- binary flags as 0/1;
- counts (follows, fans, friends, register days) as ``log1p`` (heavy-tailed);
- the range/degree strings one-hot over a fixed vocabulary (an unknown value is an error);
- the anonymised categorical codes ``onehot_feat0..17`` one-hot over each column's
  ``TOP_CODES`` most frequent codes (rarer codes and nulls are all-zero);

then every column is standardised over all users (zero-variance columns stay 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from vidrec.data.errors import bad_value

BINARY_COLUMNS: tuple[str, ...] = ("is_lowactive_period", "is_live_streamer", "is_video_author")
COUNT_COLUMNS: tuple[str, ...] = (
    "follow_user_num",
    "fans_user_num",
    "friend_user_num",
    "register_days",
)
RANGE_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "user_active_degree": ("full_active", "high_active", "middle_active", "UNKNOWN"),
    "follow_user_num_range": (
        "0",
        "(0,10]",
        "(10,50]",
        "(50,100]",
        "(100,150]",
        "(150,250]",
        "(250,500]",
        "500+",
    ),
    "fans_user_num_range": (
        "0",
        "[1,10)",
        "[10,100)",
        "[100,1k)",
        "[1k,5k)",
        "[5k,1w)",
        "[1w,10w)",
    ),
    "friend_user_num_range": (
        "0",
        "[1,5)",
        "[5,30)",
        "[30,60)",
        "[60,120)",
        "[120,250)",
        "250+",
    ),
    "register_days_range": ("15-30", "31-60", "61-90", "91-180", "181-365", "366-730", "730+"),
}
CODE_COLUMNS: tuple[str, ...] = tuple(f"onehot_feat{i}" for i in range(18))
TOP_CODES = 4

USER_FEATURE_COLUMNS: tuple[str, ...] = (
    "user_id",
    *BINARY_COLUMNS,
    *COUNT_COLUMNS,
    *RANGE_VOCABULARIES,
    *CODE_COLUMNS,
)
"""Columns of ``user_features.parquet`` the encoder needs."""

USER_STATIC_DIM = (
    len(BINARY_COLUMNS)
    + len(COUNT_COLUMNS)
    + sum(len(v) for v in RANGE_VOCABULARIES.values())
    + len(CODE_COLUMNS) * TOP_CODES
)
"""Width of ``users.static``."""


def _top_codes(values: pl.Series) -> list[float]:
    counts = values.drop_nulls().value_counts(name="n")
    ranked = counts.sort(["n", values.name], descending=[True, False])
    return [float(v) for v in ranked[values.name].head(TOP_CODES).to_list()]


def _encoded_columns(features: pl.DataFrame, path: Path) -> list[pl.Expr]:
    exprs: list[pl.Expr] = [pl.col(c).fill_null(0).cast(pl.Float64) for c in BINARY_COLUMNS]
    exprs += [pl.col(c).fill_null(0).clip(0).cast(pl.Float64).log1p() for c in COUNT_COLUMNS]
    for column, vocabulary in RANGE_VOCABULARIES.items():
        unknown = features.filter(~pl.col(column).is_in(vocabulary))[column]
        if len(unknown):
            raise bad_value(
                path, column, f"unexpected value {unknown[0]!r} (known: {', '.join(vocabulary)})"
            )
        exprs += [(pl.col(column) == v).cast(pl.Float64).alias(f"{column}={v}") for v in vocabulary]
    for column in CODE_COLUMNS:
        codes = _top_codes(features[column])
        exprs += [
            (pl.col(column).cast(pl.Float64) == c)
            .fill_null(False)
            .cast(pl.Float64)
            .alias(f"{column}={c}")
            for c in codes
        ]
        # A column with fewer distinct codes than TOP_CODES keeps its width with zero slots.
        exprs += [pl.lit(0.0).alias(f"{column}_pad{i}") for i in range(TOP_CODES - len(codes))]
    return exprs


def encode_user_static(features: pl.DataFrame, path: Path) -> np.ndarray:
    """``float32[n_users, USER_STATIC_DIM]``, rows in the order of ``features``."""
    raw = features.select(_encoded_columns(features, path)).to_numpy().astype(np.float64)
    std = raw.std(axis=0)
    std[std == 0] = 1.0
    return ((raw - raw.mean(axis=0)) / std).astype(np.float32)
