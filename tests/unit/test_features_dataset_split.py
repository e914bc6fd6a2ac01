"""A dataset's own ``split`` column reaches the example tables and is the evaluation's split."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from tests.dataset_fixture import DAY_MS, make_dataset, write_dataset
from vidrec.config import Config
from vidrec.data.dataset import Dataset, load_dataset
from vidrec.errors import InputError
from vidrec.features.offline import TrainingTables, build_training_tables
from vidrec.models.splits import SplitSpec, parse_split, split_examples
from vidrec.offline.run import Steps, _dataset_inputs


def _given_split() -> pl.Expr:
    """Not a day split: even users' last two days are test, odd users' last day valid."""
    day = (pl.col("ts") - pl.col("ts").min()) // DAY_MS
    even = pl.col("user_id") % 2 == 0
    return (
        pl.when(even & (day >= 2))
        .then(pl.lit("test"))
        .when(~even & (day >= 3))
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
        .alias("split")
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset]:
    inter, items, users = make_dataset(n_users=30, n_items=150, days=4)
    root = tmp_path_factory.mktemp("split") / "ds"
    write_dataset(root, (inter.with_columns(_given_split()), items, users))
    return root, load_dataset(root)


@pytest.fixture(scope="module")
def tables(dataset: tuple[Path, Dataset]) -> TrainingTables:
    ds = dataset[1]
    splits = ds.interactions.select("event_id", "split")
    return build_training_tables(ds.events, ds.videos, ds.users, splits=splits)


def _expected(ds: Dataset, event: str) -> pl.DataFrame:
    return ds.interactions.filter(pl.col("event") == event).select(
        "user_id", pl.col("item_id").alias("video_id"), "ts", pl.col("split").alias("given")
    )


def test_examples_carry_each_rows_given_split(
    dataset: tuple[Path, Dataset], tables: TrainingTables
) -> None:
    ds = dataset[1]
    for table, event in ((tables.ranker, "impression"), (tables.retrieval, "click")):
        assert "split" in table.columns
        got = table.join(_expected(ds, event), on=["user_id", "video_id", "ts"], how="left")
        assert got.height == table.height == _expected(ds, event).height
        assert got["given"].null_count() == 0
        assert (got["split"] == got["given"]).all()
        assert set(got["split"]) == {"train", "valid", "test"}


def test_evaluation_uses_the_given_split(tables: TrainingTables) -> None:
    for table in (tables.ranker, tables.retrieval):
        assert parse_split("auto").resolve(table) == SplitSpec("dataset")
        for spec in ("auto", "dataset"):
            train, valid, test = split_examples(table, parse_split(spec))
            for rows, part in ((train, "train"), (valid, "valid"), (test, "test")):
                assert rows.height == table.filter(pl.col("split") == part).height > 0
                assert rows["split"].unique().to_list() == [part]
        # the given test rows are not the last day's: auto did not fall back to last-day
        _, _, last_day = split_examples(table, parse_split("last-day"))
        assert last_day.height != test.height


def test_without_a_split_the_tables_have_none(dataset: tuple[Path, Dataset]) -> None:
    ds = dataset[1]
    plain = build_training_tables(ds.events, ds.videos, ds.users)
    assert "split" not in plain.ranker.columns and "split" not in plain.retrieval.columns
    assert parse_split("auto").resolve(plain.ranker) == SplitSpec("last-day")


def test_a_row_without_a_split_is_refused(dataset: tuple[Path, Dataset]) -> None:
    ds = dataset[1]
    one = ds.interactions.filter(pl.col("event") == "impression")["event_id"][0]
    partial = ds.interactions.select("event_id", "split").filter(pl.col("event_id") != one)
    with pytest.raises(InputError, match=r"ranker examples: 1 of .* rows have no split"):
        build_training_tables(ds.events, ds.videos, ds.users, splits=partial)


def test_pipeline_dataset_inputs_hand_over_the_split(
    tmp_path: Path, dataset: tuple[Path, Dataset]
) -> None:
    root, ds = dataset
    steps = Steps(Console(quiet=True), {})
    (tmp_path / "data").mkdir()
    *_, splits = _dataset_inputs(tmp_path, root, Config(), steps)
    assert splits is not None
    assert splits.equals(ds.interactions.select("event_id", "split"))
    plain = tmp_path / "plain"
    inter, items, users = make_dataset(n_users=10, n_items=60, days=2)
    write_dataset(plain, (inter, items, users))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "data").mkdir()
    *_, none = _dataset_inputs(tmp_path / "p", plain, Config(), steps)
    assert none is None
