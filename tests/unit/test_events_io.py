from pathlib import Path

import polars as pl
import pytest

from vidrec.errors import InputError
from vidrec.events.event_log import read_events, write_events
from vidrec.schema import EVENT_SCHEMA


def _events(n: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": list(range(n)),
            "video_id": [10 + i for i in range(n)],
            "type": ["impression"] * n,
            "watch_ms": [0] * n,
            "video_duration_ms": [5000] * n,
            "position": list(range(n)),
            "surface": ["home"] * n,
            "request_id": ["r"] * n,
            "ts": [3000 - i for i in range(n)],
            "device": ["ios"] * n,
            "region": ["north"] * n,
        },
        schema=EVENT_SCHEMA,
    )


def test_round_trip_sorted_by_ts(tmp_path: Path) -> None:
    write_events(_events(), tmp_path / "e.parquet")
    back = read_events(tmp_path / "e.parquet")
    assert back["ts"].to_list() == sorted(_events()["ts"].to_list())
    assert back.schema == pl.Schema(EVENT_SCHEMA)


def test_directory_of_partitions(tmp_path: Path) -> None:
    write_events(_events(2), tmp_path / "h=1" / "a.parquet")
    write_events(_events(3), tmp_path / "h=2" / "b.parquet")
    assert read_events(tmp_path).height == 5


def test_missing_column_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    _events().drop("watch_ms").write_parquet(path)
    with pytest.raises(InputError, match=r"bad\.parquet.*'watch_ms'"):
        read_events(path)


def test_wrong_type_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    _events().with_columns(pl.col("user_id").cast(pl.String)).write_parquet(path)
    with pytest.raises(InputError, match=r"bad\.parquet.*'user_id'.*String"):
        read_events(path)


def test_corrupt_parquet_named(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.parquet"
    write_events(_events(), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(InputError, match=r"corrupt\.parquet"):
        read_events(path)


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_events(tmp_path / "nope.parquet")
    with pytest.raises(InputError, match=r"no \.parquet files"):
        read_events(tmp_path)
