import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.unit.data_fixtures import KUAIREC_DIR, real_catalog
from vidrec.data.errors import DatasetError
from vidrec.data.kuairec import (
    BIG_MATRIX_HEAD,
    CAPTION_CATEGORY,
    INTERACTION_SCHEMA,
    ITEM_CATEGORIES,
    USER_FEATURES,
    USERS_SCHEMA,
    fit_duration_lognormal,
    load_catalog,
)
from vidrec.data.user_features import USER_STATIC_DIM
from vidrec.schema import N_CATEGORIES, VIDEO_SCHEMA


def test_real_table_sizes_and_exact_schemas() -> None:
    catalog = real_catalog()
    assert catalog.videos.shape == (10_728, len(VIDEO_SCHEMA))
    assert catalog.users.shape == (7_176, len(USERS_SCHEMA))
    assert catalog.interactions.shape == (1_000, len(INTERACTION_SCHEMA))
    assert dict(catalog.videos.schema) == VIDEO_SCHEMA
    assert dict(catalog.interactions.schema) == INTERACTION_SCHEMA
    assert catalog.users.schema["static"] == pl.Array(pl.Float32, USER_STATIC_DIM)
    assert catalog.videos["video_id"].to_list() == list(range(10_728))
    assert catalog.users["user_id"].to_list() == list(range(7_176))


def test_videos_carry_the_real_categories_and_captions() -> None:
    videos = real_catalog().videos
    raw = pl.read_parquet(KUAIREC_DIR / ITEM_CATEGORIES).sort("video_id")
    assert videos["category_ids"].to_list() == raw["feat"].to_list()
    assert (videos["primary_category"] == videos["category_ids"].list.first()).all()
    assert videos["primary_category"].is_between(0, N_CATEGORIES - 1).all()
    captions = pl.read_parquet(KUAIREC_DIR / CAPTION_CATEGORY).sort("video_id")
    assert videos["caption"].to_list() == captions["caption"].fill_null("").to_list()
    assert videos["category_name"].to_list() == captions["first_level_category_name"].to_list()


def test_real_author_duration_and_upload_win_over_derived_values() -> None:
    videos = real_catalog().videos.sort("video_id")
    # item_daily_features_head1000: video 0 by author 3309, 5,966 ms, uploaded 2020-03-30.
    row = videos.row(0, named=True)
    assert (row["creator_id"], row["duration_ms"]) == (3309, 5966)
    assert row["upload_ts"] == 1_585_526_400_000
    # big_matrix_head1000's first row: video 3649 lasts 10,867 ms.
    assert videos.filter(pl.col("video_id") == 3649)["duration_ms"].item() == 10_867


def test_derived_fields_follow_the_documented_model_and_the_seed() -> None:
    catalog = real_catalog()
    videos = catalog.videos
    per_creator = videos["creator_id"].value_counts()["count"].to_numpy()
    assert 0.7 < len(videos) / len(per_creator) / 8 < 1.3  # ~1 creator per 8 videos
    assert per_creator.max() > 10 * np.median(per_creator)  # heavy tail
    mu, sigma = fit_duration_lognormal(catalog.interactions["video_duration"].to_numpy())
    log_d = np.log(videos["duration_ms"].to_numpy())
    assert abs(np.median(log_d) - mu) < 0.05 and abs(log_d.std() - sigma) < 0.1
    other = load_catalog(KUAIREC_DIR, seed=1)
    again = load_catalog(KUAIREC_DIR, seed=0)
    assert again.videos.equals(videos)
    assert not other.videos["duration_ms"].equals(videos["duration_ms"])
    assert other.users.equals(catalog.users)  # users have no seeded fields


def test_user_static_is_standardised_and_informative() -> None:
    users = real_catalog().users
    static = np.stack(users["static"].to_numpy())
    assert np.isfinite(static).all()
    varying = static.std(axis=0) > 0
    assert varying.sum() > 60
    np.testing.assert_allclose(static[:, varying].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(static[:, varying].std(axis=0), 1, atol=1e-3)
    assert len(np.unique(static.round(4), axis=0)) > 5_000  # users are distinguishable


def test_region_and_device_are_a_function_of_user_id() -> None:
    users = real_catalog().users
    assert set(users["region"].unique()) == {"north", "south", "east", "west", "central"}
    again = load_catalog(KUAIREC_DIR, seed=5).users
    assert again["region"].equals(users["region"]) and again["device"].equals(users["device"])
    shares = users["device"].value_counts()["count"].to_numpy() / len(users)
    assert shares.min() > 0.25


@pytest.fixture
def kuairec_copy(tmp_path: Path) -> Path:
    target = tmp_path / "kuairec"
    shutil.copytree(KUAIREC_DIR, target)
    return target


@pytest.mark.parametrize(
    "name", [ITEM_CATEGORIES, CAPTION_CATEGORY, USER_FEATURES, BIG_MATRIX_HEAD]
)
def test_missing_file_is_named(kuairec_copy: Path, name: str) -> None:
    (kuairec_copy / name).unlink()
    with pytest.raises(DatasetError, match=rf"{kuairec_copy / name}: file not found.*restore"):
        load_catalog(kuairec_copy)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        (ITEM_CATEGORIES, "feat"),
        (CAPTION_CATEGORY, "first_level_category_name"),
        (USER_FEATURES, "fans_user_num_range"),
        (BIG_MATRIX_HEAD, "watch_ratio"),
    ],
)
def test_missing_column_is_named(kuairec_copy: Path, name: str, column: str) -> None:
    path = kuairec_copy / name
    pl.read_parquet(path).drop(column).write_parquet(path)
    with pytest.raises(DatasetError, match=rf"{path}: column '{column}' is missing"):
        load_catalog(kuairec_copy)


def test_unknown_range_value_is_named(kuairec_copy: Path) -> None:
    path = kuairec_copy / USER_FEATURES
    raw = pl.read_parquet(path)
    raw.with_columns(pl.lit("lots").alias("register_days_range")).write_parquet(path)
    with pytest.raises(DatasetError, match=r"register_days_range.*'lots'"):
        load_catalog(kuairec_copy)


def test_out_of_range_category_is_named(kuairec_copy: Path) -> None:
    path = kuairec_copy / ITEM_CATEGORIES
    raw = pl.read_parquet(path)
    raw = raw.with_columns(
        pl.when(pl.col("video_id") == 7)
        .then(pl.lit([99], dtype=pl.List(pl.Int64)))
        .otherwise(pl.col("feat"))
        .alias("feat")
    )
    raw.write_parquet(path)
    with pytest.raises(DatasetError, match=r"column 'feat': video 7"):
        load_catalog(kuairec_copy)
