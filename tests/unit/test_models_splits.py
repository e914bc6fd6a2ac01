"""--split specs: parsing errors name the option; each kind holds out the rows it says."""

from __future__ import annotations

import polars as pl
import pytest

from vidrec.models.splits import SplitSpec, parse_split, split_examples


def _log() -> pl.DataFrame:
    # user 1: 10 rows at ts 0..9; user 2: 5 rows at ts 100..104; a day is 4 ts units
    users = [1] * 10 + [2] * 5
    ts = list(range(10)) + list(range(100, 105))
    return pl.DataFrame({"user_id": users, "ts": ts, "day": [t // 4 for t in ts]})


def test_parse_accepts_every_kind_and_prints_back() -> None:
    for text in ("last-day", "per-user:0.2", "global:0.85", "dataset", "auto"):
        assert str(parse_split(text)) == text
    assert parse_split("per-user:0.2") == SplitSpec("per-user", 0.2)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("yesterday", "unknown split"),
        ("per-user", "needs a number"),
        ("global:abc", "needs a number"),
        ("global:1.5", r"in \(0, 1\)"),
        ("per-user:0", r"in \(0, 1\)"),
        ("last-day:3", "takes no ':' argument"),
    ],
)
def test_bad_specs_name_the_option(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=rf"--split: .*{why}"):
        parse_split(text)


def test_per_user_holds_out_each_users_last_share() -> None:
    train, valid, test = split_examples(_log().sample(fraction=1.0, shuffle=True, seed=3),
                                        parse_split("per-user:0.2"))  # fmt: skip
    # user 1: floor(0.2*10)=2 test (ts 8, 9), floor(0.2*8)=1 valid (ts 7); user 2: 1 test
    # (ts 104) and floor(0.2*4)=0 valid
    assert sorted(test["ts"].to_list()) == [8, 9, 104]
    assert valid["ts"].to_list() == [7]
    assert sorted(train["ts"].to_list()) == [0, 1, 2, 3, 4, 5, 6, 100, 101, 102, 103]


def test_global_holds_out_rows_after_the_time_quantile() -> None:
    df = pl.DataFrame({"ts": list(range(20)), "user_id": [1] * 20})
    train, valid, test = split_examples(df, parse_split("global:0.75"))
    # lower 0.75 quantile of 0..19 is 14: test = 15..19; of 0..14 it is 10: valid = 11..14
    assert test["ts"].to_list() == [15, 16, 17, 18, 19]
    assert valid["ts"].to_list() == [11, 12, 13, 14]
    assert train.height == 11


def test_last_day_and_auto_keep_the_day_split() -> None:
    for spec in ("last-day", "auto"):
        train, valid, test = split_examples(_log(), parse_split(spec))
        assert test["ts"].to_list() == [104] and valid["ts"].to_list() == [100, 101, 102, 103]
        assert train.height == 10


def test_dataset_column_is_used_and_checked() -> None:
    df = _log().with_columns(
        split=pl.when(pl.col("ts") >= 100).then(pl.lit("test")).otherwise(pl.lit("train"))
    )
    assert parse_split("auto").resolve(df) == SplitSpec("dataset")
    train, valid, test = split_examples(df, parse_split("auto"))
    assert test["ts"].to_list() == [100, 101, 102, 103, 104]
    # no valid rows shipped: train's rows after its 0.9 quantile (ts 8) become valid
    assert valid["ts"].to_list() == [9] and train.height == 9
    bad = df.with_columns(split=pl.lit("holdout"))
    with pytest.raises(ValueError, match=r"column 'split' holds \['holdout'\]"):
        split_examples(bad, parse_split("dataset"))
    with pytest.raises(ValueError, match="missing column 'split'"):
        split_examples(_log(), parse_split("dataset"))


def test_a_split_without_test_rows_is_an_error() -> None:
    tiny = pl.DataFrame({"user_id": [1, 2], "ts": [0, 1]})
    with pytest.raises(ValueError, match=r"--split per-user:0\.2 leaves no test rows"):
        split_examples(tiny, parse_split("per-user:0.2"))
