"""The dataset contract (docs/datasets.md): what loads, what is skipped, what is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.dataset_fixture import CATALOGUE_YEARS, DAY_MS, make_dataset, write_dataset
from vidrec.config import DataConfig
from vidrec.data.dataset import ENGAGEMENT_TYPES, MAX_ENTITY_ID, load_dataset
from vidrec.data.errors import DatasetError
from vidrec.features import timeline
from vidrec.schema import EVENT_SCHEMA, N_CATEGORIES, EventType

Frames = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]


@pytest.fixture(scope="module")
def frames() -> Frames:
    return make_dataset(n_users=40, n_items=200, days=4)


def _write(tmp_path: Path, frames: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None],
           fmt: str = "parquet") -> Path:  # fmt: skip
    return write_dataset(tmp_path / "ds", frames, fmt)


def _width(users: pl.DataFrame) -> int:
    """Width of the users' ``static`` feature vector."""
    return int(users["static"].to_numpy().shape[1])


def _refused(root: Path, *needles: str, cfg: DataConfig | None = None) -> str:
    with pytest.raises(DatasetError) as err:
        load_dataset(root, cfg)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    return str(err.value)


def test_id_bound_matches_the_feature_timelines() -> None:
    assert MAX_ENTITY_ID == timeline.MAX_ENTITY_ID
    assert set(ENGAGEMENT_TYPES) == {t.value for t in EventType} - {"upload"}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_valid_dataset_loads_whole(tmp_path: Path, frames: Frames, fmt: str) -> None:
    inter, items, users = frames
    ds = load_dataset(_write(tmp_path, frames, fmt))
    assert ds.report.skipped == {}
    assert ds.events.height == ds.interactions.height == inter.height
    assert list(ds.events.schema.items()) == list(EVENT_SCHEMA.items())
    assert ds.events["ts"].is_sorted()
    assert set(ds.videos["video_id"]) == set(items["item_id"])
    # category ids 101..1001 are indexed into the model's slots, one per distinct id
    primary = ds.videos.join(
        items.select(pl.col("item_id").alias("video_id"), "category"), on="video_id"
    )
    assert (
        primary.group_by("category")
        .agg(pl.col("primary_category").n_unique().alias("n"))["n"]
        .to_list()
        == [1] * items["category"].n_unique()
    )
    assert ds.videos["primary_category"].max() < N_CATEGORIES  # type: ignore[operator]
    uploads = ds.videos["upload_ts"].to_numpy()
    span = int(uploads.max() - uploads.min())
    assert span > (CATALOGUE_YEARS - 1) * 365 * DAY_MS
    # users keep their own columns: taste (one-hot), age, premium, region (one-hot)
    n_tastes = users["taste"].n_unique()
    assert _width(ds.users) == n_tastes + 2 + 2
    assert set(ds.users["region"]) == set(users["region"])
    # outcomes keep their impression's request id
    assert ds.events.filter(pl.col("type") != "impression")["request_id"].null_count() == 0


def test_split_column_is_the_split(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    cut = inter["ts"].quantile(0.8)
    split = pl.when(pl.col("ts") < cut).then(pl.lit("train")).otherwise(pl.lit("test"))
    ds = load_dataset(_write(tmp_path, (inter.with_columns(split.alias("split")), items, users)))
    got = ds.interactions.select("ts", "split")
    assert got.filter(pl.col("ts") < cut)["split"].unique().to_list() == ["train"]
    assert got.filter(pl.col("ts") >= cut)["split"].unique().to_list() == ["test"]
    # the split travels with each row: event_id joins it to the event log
    joined = ds.events.join(ds.interactions.select("event_id", "split"), on="event_id")
    assert joined.height == ds.events.height


def test_split_values_are_checked(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    bad = inter.with_columns(pl.lit("holdout").alias("split"))
    root = _write(tmp_path, (bad, items, users))
    _refused(root, "interactions.parquet", "'split'", f"{bad.height:,} rows", "'holdout'")


def test_without_request_ids_outcomes_join_their_impression(tmp_path: Path, frames: Frames) -> None:
    inter, items, _ = frames
    ds = load_dataset(_write(tmp_path, (inter.drop("request_id"), items, None), "csv"))
    events = ds.events
    imps = events.filter(pl.col("type") == "impression")
    clicks = events.filter(pl.col("type") == "click")
    assert clicks.height > 0
    linked = clicks.join(imps, on=["request_id", "video_id", "user_id"], suffix="_imp")
    assert linked.height == clicks.height
    assert (linked["ts"] >= linked["ts_imp"]).all()
    assert _width(ds.users) == 1


def test_csv_category_lists(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    listed = items.with_columns(pl.format("{}|7", "category").alias("category"))
    ds = load_dataset(_write(tmp_path, (inter, listed, users), "csv"))
    assert (ds.videos["category_ids"].list.len() == 2).all()


def test_many_string_values_are_hashed_not_dropped(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    many = users.with_columns(pl.format("city-{}", "user_id").alias("city"))
    cfg = DataConfig(user_onehot_max=16, user_hash_buckets=5)  # taste (10) stays one-hot
    ds = load_dataset(_write(tmp_path, (inter, items, many)), cfg)
    assert any("'city'" in n and "hashed into 5 slots" in n for n in ds.report.notes)
    width = users["taste"].n_unique() + 2 + 2 + 5  # taste, age, premium, region, city
    assert _width(ds.users) == width


@pytest.mark.parametrize(
    ("column", "mutate", "needles"),
    [
        ("user_id", pl.lit(None, pl.Int64), ["rows are empty"]),
        ("item_id", pl.lit("x"), ["expected integers"]),
        ("ts", pl.col("ts") // 1000, ["look like seconds"]),
        ("event", pl.lit("pause"), ["unknown event type", "'pause'"]),
        ("watch_ms", pl.lit(-5), ["negative"]),
        ("user_id", pl.lit(MAX_ENTITY_ID + 1), ["ids outside"]),
    ],
)
def test_bad_interactions_name_file_column_and_count(
    tmp_path: Path, frames: Frames, column: str, mutate: pl.Expr, needles: list[str]
) -> None:
    inter, items, users = frames
    root = _write(tmp_path, (inter.with_columns(mutate.alias(column)), items, users))
    message = _refused(root, "interactions.parquet", f"'{column}'", *needles)
    assert any(ch.isdigit() for ch in message.split(f"'{column}'")[1])


def test_missing_required_column_and_file(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    _refused(_write(tmp_path, (inter.drop("event"), items, users)), "interactions", "'event'")
    (tmp_path / "ds" / "items.parquet").unlink()
    _refused(tmp_path / "ds", "items.parquet", "not found")


def test_bad_items_name_file_and_column(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    twice = pl.concat([items, items.head(3)])
    _refused(_write(tmp_path, (inter, twice, users)), "items.parquet", "'item_id'", "3 rows")
    secs = items.with_columns(pl.col("upload_ts") // 1000)
    _refused(_write(tmp_path, (inter, secs, users)), "items.parquet", "'upload_ts'", "seconds")
    zero = items.with_columns(pl.lit(0).alias("duration_ms"))
    _refused(_write(tmp_path, (inter, zero, users)), "items.parquet", "'duration_ms'")


def test_repeated_users_are_refused(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    root = _write(tmp_path, (inter, items, pl.concat([users, users.head(2)])))
    _refused(root, "users.parquet", "'user_id'", "2 rows")


@pytest.mark.parametrize(
    ("reason", "setting", "column"),
    [
        ("unknown_item", "max_unknown_item_share", "item_id"),
        ("unknown_user", "max_unknown_user_share", "user_id"),
        ("before_upload", "max_before_upload_share", "ts"),
        ("duplicate", "max_duplicate_share", "request_id"),
    ],
)
def test_a_few_bad_rows_are_skipped_and_counted_too_many_are_refused(
    tmp_path: Path, frames: Frames, reason: str, setting: str, column: str
) -> None:
    inter, items, users = frames
    n_bad = 12
    rows = inter.head(n_bad)
    if reason == "unknown_item":
        bad = rows.with_columns(pl.col("item_id") + 10**6)
    elif reason == "unknown_user":
        bad = rows.with_columns(pl.col("user_id") + 10**6)
    elif reason == "before_upload":
        uploads = items.select("item_id", "upload_ts")
        bad = (
            rows.join(uploads, on="item_id")
            .with_columns((pl.col("upload_ts") - 1).alias("ts"))
            .select(inter.columns)
        )
    else:
        bad = rows
    data = pl.concat([inter, bad])
    root = _write(tmp_path, (data, items, users))
    ds = load_dataset(root)
    assert ds.report.skipped == {reason: n_bad}
    assert ds.report.kept == inter.height  # every valid row kept
    assert ds.events.height == inter.height
    strict = DataConfig(**{setting: (n_bad - 1) / data.height})  # type: ignore[arg-type]
    named = column if reason == "duplicate" else f"'{column}'"  # a key of several columns
    _refused(root, "interactions.parquet", named, f"{n_bad:,} of", setting, cfg=strict)


def test_items_without_interactions_are_kept_and_reported(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    extra = items.tail(5).with_columns(pl.col("item_id") + 10**5)
    ds = load_dataset(_write(tmp_path, (inter, pl.concat([items, extra]), users)))
    assert set(extra["item_id"]) <= set(ds.videos["video_id"])
    assert any("have no interaction; kept" in n for n in ds.report.notes)


def test_a_log_without_clicks_is_refused(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    only = inter.filter(pl.col("event") == "impression")
    _refused(_write(tmp_path, (only, items, users)), "interactions.parquet", "'event'", "'click'")


def test_optional_item_columns_are_derived(tmp_path: Path, frames: Frames) -> None:
    inter, items, users = frames
    bare = items.select("item_id")
    ds = load_dataset(_write(tmp_path, (inter, bare, users)))
    first = inter.group_by("item_id").agg(pl.col("ts").min())
    got = ds.videos.join(first.rename({"item_id": "video_id"}), on="video_id")
    assert (got["upload_ts"] == got["ts"]).all()
    assert ds.videos["creator_id"].n_unique() == items.height
    assert np.all(ds.videos["duration_ms"].to_numpy() > 0)
