"""Shared inputs for the vidrec.data tests: the real catalogue and one small simulation."""

from __future__ import annotations

from functools import cache

import polars as pl

from vidrec.config import DataConfig
from vidrec.data.kuairec import Catalog, load_catalog
from vidrec.data.simulator import SimConfig, simulate

KUAIREC_DIR = DataConfig().kuairec_dir
SMALL = SimConfig(seed=3, n_users=2000, days=14)
"""The 'small config' of the brief: ~2,000 users, 14 days, a few hundred thousand events."""


@cache
def real_catalog() -> Catalog:
    return load_catalog(KUAIREC_DIR)


@cache
def small_events() -> pl.DataFrame:
    return simulate(real_catalog(), SMALL)


def click_labels(events: pl.DataFrame) -> pl.DataFrame:
    """One row per impression with ``clicked`` (0/1) joined from the same request."""
    clicks = events.filter(pl.col("type") == "click").select(
        "request_id", "video_id", pl.lit(1).alias("clicked")
    )
    return (
        events.filter(pl.col("type") == "impression")
        .join(clicks, on=["request_id", "video_id"], how="left")
        .with_columns(pl.col("clicked").fill_null(0))
    )
