"""Load the real KuaiRec tables (``data/kuairec``) into the catalogue every stage shares.

Real: video ids, categories (``item_categories.feat``), captions and first-level category
names (``caption_category``), the 7,176 users and their features (``user_features``), and
the 1,000 real watch-time interactions (``big_matrix_head1000``).

Derived, because KuaiRec lacks them for most videos (all seeded by ``seed``, documented here
so nobody mistakes them for data):

- **creator_id**: the real ``author_id`` where ``item_daily_features_head1000`` has it
  (videos 0-16). Every other video gets a synthetic creator: about one creator per
  ``VIDEOS_PER_CREATOR`` videos, each with at least one video and the rest spread by a Zipf
  law over creators (power-law videos per creator). Creators take contiguous runs of videos
  ordered by primary category, so a creator mostly publishes in one category. Synthetic ids
  start after the largest real author id, so they never collide with a real one.
- **duration_ms**: the real duration from ``item_daily_features_head1000`` or
  ``big_matrix_head1000`` where known; otherwise drawn from a log-normal fitted to the real
  ``video_duration`` of ``big_matrix_head1000`` (clipped to 1 s .. 10 min).
- **upload_ts**: the real ``upload_dt`` (UTC midnight) where known; otherwise uniform over
  ``[CATALOG_UPLOAD_START_MS, KUAIREC_LOG_START_MS)``, i.e. before the KuaiRec log begins.
  The simulator re-schedules part of the catalogue into its window (``schedule_uploads``).
- **users.region / users.device**: synthetic, a fixed hash of ``user_id`` into
  ``config.data.regions`` / ``devices`` (KuaiRec has neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.config import DataConfig
from vidrec.data.errors import (
    RESTORE_HINT,
    DatasetError,
    bad_value,
    missing_column,
    missing_file,
)
from vidrec.data.user_features import USER_FEATURE_COLUMNS, USER_STATIC_DIM, encode_user_static
from vidrec.schema import N_CATEGORIES, USER_SCHEMA, VIDEO_SCHEMA, check_columns

ITEM_CATEGORIES = "item_categories.parquet"
CAPTION_CATEGORY = "caption_category.parquet"
USER_FEATURES = "user_features.parquet"
BIG_MATRIX_HEAD = "big_matrix_head1000.parquet"
ITEM_DAILY_HEAD = "item_daily_features_head1000.parquet"

KUAIREC_LOG_START_MS = int(datetime(2020, 7, 5, tzinfo=UTC).timestamp() * 1000)
"""First midnight (UTC) of the KuaiRec big matrix; the simulator's default start."""
CATALOG_UPLOAD_START_MS = int(datetime(2020, 3, 1, tzinfo=UTC).timestamp() * 1000)
VIDEOS_PER_CREATOR = 8
CREATOR_ZIPF_EXPONENT = 0.6  # top creator holds ~2% of the catalogue
MIN_DURATION_MS = 1_000
MAX_DURATION_MS = 600_000

INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "video_id": pl.Int64(),
    "play_duration": pl.Int64(),  # ms
    "video_duration": pl.Int64(),  # ms
    "timestamp": pl.Int64(),  # epoch ms (KuaiRec stores float seconds)
    "watch_ratio": pl.Float64(),
}

USERS_SCHEMA: dict[str, pl.DataType] = {
    **USER_SCHEMA,
    "static": pl.Array(pl.Float32(), USER_STATIC_DIM),
}
"""``schema.USER_SCHEMA`` with the ``static`` width fixed by this loader."""


@dataclass(frozen=True)
class Catalog:
    """The real KuaiRec catalogue plus the derived fields described in the module docstring."""

    videos: pl.DataFrame  # VIDEO_SCHEMA
    users: pl.DataFrame  # USERS_SCHEMA
    interactions: pl.DataFrame  # INTERACTION_SCHEMA: the 1,000 real big_matrix rows


def read_table(path: Path, columns: Sequence[str]) -> pl.DataFrame:
    """Read ``columns`` of a parquet file, raising ``DatasetError`` naming what is missing."""
    if not path.is_file():
        raise missing_file(path)
    try:
        present = pl.read_parquet_schema(path)
    except Exception as exc:  # polars raises several types for a damaged footer
        raise DatasetError(f"{path}: not a readable Parquet file ({exc}); {RESTORE_HINT}") from exc
    for column in columns:
        if column not in present:
            raise missing_column(path, column)
    return pl.read_parquet(path, columns=list(columns))


def fit_duration_lognormal(durations_ms: np.ndarray) -> tuple[float, float]:
    """``(mu, sigma)`` of ``log(duration_ms)`` over the positive durations."""
    logs = np.log(durations_ms[durations_ms > 0].astype(np.float64))
    return float(logs.mean()), float(logs.std())


def stable_hash(ids: np.ndarray, salt: int) -> np.ndarray:
    """A fixed 64-bit mix (splitmix64) of integer ids: same id, same value, on any machine."""
    with np.errstate(over="ignore"):
        x = ids.astype(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _load_interactions(kuairec_dir: Path) -> pl.DataFrame:
    raw = read_table(kuairec_dir / BIG_MATRIX_HEAD, tuple(INTERACTION_SCHEMA))
    return raw.select(
        pl.col("user_id").cast(pl.Int64),
        pl.col("video_id").cast(pl.Int64),
        pl.col("play_duration").cast(pl.Int64),
        pl.col("video_duration").cast(pl.Int64),
        (pl.col("timestamp") * 1000).round().cast(pl.Int64),
        pl.col("watch_ratio").cast(pl.Float64),
    )


def _real_video_facts(kuairec_dir: Path, interactions: pl.DataFrame) -> pl.DataFrame:
    """Per video id: real author, duration and upload time where KuaiRec has them."""
    path = kuairec_dir / ITEM_DAILY_HEAD
    daily = read_table(path, ("video_id", "author_id", "video_duration", "upload_dt"))
    facts = daily.group_by("video_id").agg(
        pl.col("author_id").drop_nulls().first().cast(pl.Int64).alias("real_author"),
        pl.col("video_duration").drop_nulls().first().round().cast(pl.Int64).alias("daily_ms"),
        pl.col("upload_dt")
        .drop_nulls()
        .first()
        .str.to_date("%Y-%m-%d", strict=False)
        .alias("upload_date"),
    )
    matrix = interactions.group_by("video_id").agg(pl.col("video_duration").first().alias("m_ms"))
    return (
        facts.with_columns(pl.col("video_id").cast(pl.Int64))
        .join(matrix, on="video_id", how="full", coalesce=True)
        .select(
            "video_id",
            "real_author",
            pl.coalesce("daily_ms", "m_ms").alias("real_duration_ms"),
            (pl.col("upload_date").cast(pl.Datetime("ms", "UTC")).dt.epoch("ms")).alias(
                "real_upload_ts"
            ),
        )
    )


def _synthetic_creators(
    primary_category: np.ndarray, first_id: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(primary_category)
    n_creators = max(1, round(n / VIDEOS_PER_CREATOR))
    zipf = np.arange(1, n_creators + 1, dtype=np.float64) ** -CREATOR_ZIPF_EXPONENT
    counts = 1 + rng.multinomial(n - n_creators, zipf / zipf.sum())
    order = np.lexsort((rng.random(n), primary_category))
    creators = np.empty(n, dtype=np.int64)
    creators[order] = np.repeat(first_id + rng.permutation(n_creators), counts)
    return creators


def _load_videos(kuairec_dir: Path, interactions: pl.DataFrame, seed: int) -> pl.DataFrame:
    path = kuairec_dir / ITEM_CATEGORIES
    categories = read_table(path, ("video_id", "feat"))
    bad = categories.filter(
        (pl.col("feat").list.len().fill_null(0) == 0)
        | (pl.col("feat").list.min() < 0)
        | (pl.col("feat").list.max() >= N_CATEGORIES)
    )
    if len(bad):
        raise bad_value(
            path,
            "feat",
            f"video {bad['video_id'][0]} needs 1+ category ids in 0..{N_CATEGORIES - 1}",
        )
    captions = read_table(
        kuairec_dir / CAPTION_CATEGORY, ("video_id", "caption", "first_level_category_name")
    )
    facts = _real_video_facts(kuairec_dir, interactions)
    base = (
        categories.select(
            pl.col("video_id").cast(pl.Int64),
            pl.col("feat").cast(pl.List(pl.Int64)).alias("category_ids"),
        )
        .join(captions.with_columns(pl.col("video_id").cast(pl.Int64)), on="video_id", how="left")
        .join(facts, on="video_id", how="left")
        .sort("video_id")
        .with_columns(pl.col("category_ids").list.first().alias("primary_category"))
    )
    n = len(base)
    creator_rng, duration_rng, upload_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    max_author = base["real_author"].max()
    first_synthetic = 0 if max_author is None else int(max_author) + 1  # type: ignore[arg-type]
    creators = _synthetic_creators(
        base["primary_category"].to_numpy(), first_synthetic, creator_rng
    )
    mu, sigma = fit_duration_lognormal(interactions["video_duration"].to_numpy())
    durations = np.clip(duration_rng.lognormal(mu, sigma, n), MIN_DURATION_MS, MAX_DURATION_MS)
    uploads = upload_rng.integers(CATALOG_UPLOAD_START_MS, KUAIREC_LOG_START_MS, n)
    videos = base.select(
        "video_id",
        pl.coalesce("real_author", pl.Series(creators)).alias("creator_id"),
        "category_ids",
        "primary_category",
        pl.col("first_level_category_name").fill_null("UNKNOWN").alias("category_name"),
        pl.col("caption").fill_null(""),
        pl.coalesce("real_duration_ms", pl.Series(durations.round().astype(np.int64))).alias(
            "duration_ms"
        ),
        pl.coalesce("real_upload_ts", pl.Series(uploads.astype(np.int64))).alias("upload_ts"),
    )
    check_columns(videos, VIDEO_SCHEMA, f"videos from {kuairec_dir}")
    return videos


def _load_users(kuairec_dir: Path, regions: Sequence[str], devices: Sequence[str]) -> pl.DataFrame:
    path = kuairec_dir / USER_FEATURES
    features = read_table(path, USER_FEATURE_COLUMNS).sort("user_id")
    static = encode_user_static(features, path)
    ids = features["user_id"].cast(pl.Int64).to_numpy()
    users = pl.DataFrame(
        {
            "user_id": ids,
            "region": np.asarray(regions)[stable_hash(ids, 1) % np.uint64(len(regions))],
            "device": np.asarray(devices)[stable_hash(ids, 2) % np.uint64(len(devices))],
            "activity": features["user_active_degree"],
            "static": pl.Series(static).cast(pl.Array(pl.Float32, USER_STATIC_DIM)),
        },
        schema_overrides={"region": pl.String, "device": pl.String},
    )
    check_columns(users, USERS_SCHEMA, f"users from {path}")
    return users


def load_catalog(
    kuairec_dir: Path,
    seed: int = 0,
    regions: Sequence[str] = DataConfig().regions,
    devices: Sequence[str] = DataConfig().devices,
) -> Catalog:
    """Real KuaiRec videos, users and interactions, plus seeded derived fields (see module)."""
    kuairec_dir = Path(kuairec_dir)
    interactions = _load_interactions(kuairec_dir)
    check_columns(interactions, INTERACTION_SCHEMA, f"interactions from {kuairec_dir}")
    return Catalog(
        videos=_load_videos(kuairec_dir, interactions, seed),
        users=_load_users(kuairec_dir, regions, devices),
        interactions=interactions,
    )
