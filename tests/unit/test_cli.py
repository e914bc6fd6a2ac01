"""The `vidrec` command as a person runs it: help, and bad input → exit 2 naming the culprit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from vidrec.config import REPO_ROOT
from vidrec.events.event_log import write_events
from vidrec.schema import EVENT_SCHEMA

EXIT_INPUT = 2


def vidrec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidrec.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize("args", [(), ("pipeline", "run"), ("train",), ("build",)])
def test_help_explains_every_command(args: tuple[str, ...]) -> None:
    result = vidrec(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def _events(tmp_path: Path) -> Path:
    events = pl.DataFrame(
        {
            "event_id": ["a"],
            "user_id": [1],
            "video_id": [2],
            "type": ["impression"],
            "watch_ms": [0],
            "video_duration_ms": [1000],
            "position": [0],
            "surface": ["home"],
            "request_id": ["r"],
            "ts": [1_600_000_000_000],
            "device": ["ios"],
            "region": ["north"],
        },
        schema=EVENT_SCHEMA,
    )
    return write_events(events, tmp_path / "events.parquet")


def _assert_input_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == EXIT_INPUT, result.stderr
    message = " ".join(result.stderr.split())  # rich may wrap long lines
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in result.stderr


def test_missing_dataset_file_names_it(tmp_path: Path) -> None:
    data = tmp_path / "kuairec"
    shutil.copytree(REPO_ROOT / "data" / "kuairec", data)
    (data / "user_features.parquet").unlink()
    out = tmp_path / "out"
    result = vidrec(
        "pipeline", "run", "--profile", "test", "--out", str(out), "--quiet",
        env={"VIDREC_DATA__KUAIREC_DIR": str(data)},
    )  # fmt: skip
    _assert_input_error(result, "user_features.parquet", "not found")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["kuairec"]  # no partial output left


def test_dataset_missing_column_names_file_and_column(tmp_path: Path) -> None:
    data = tmp_path / "kuairec"
    shutil.copytree(REPO_ROOT / "data" / "kuairec", data)
    path = data / "item_categories.parquet"
    path.chmod(0o644)
    pl.read_parquet(path).rename({"feat": "features"}).write_parquet(path)
    result = vidrec(
        "train", "--profile", "test", "--out", str(tmp_path / "out"), "--quiet",
        env={"VIDREC_DATA__KUAIREC_DIR": str(data)},
    )  # fmt: skip
    _assert_input_error(result, "item_categories.parquet", "'feat'")
    assert not (tmp_path / "out").exists()


def test_events_with_wrong_column_type(tmp_path: Path) -> None:
    path = _events(tmp_path)
    pl.read_parquet(path).with_columns(pl.col("watch_ms").cast(pl.Float64)).write_parquet(path)
    out = tmp_path / "out"
    result = vidrec(
        "pipeline", "run", "--profile", "test", "--events", str(path), "--out", str(out), "--quiet"
    )
    _assert_input_error(result, "events.parquet", "'watch_ms'", "Float64")
    assert not out.exists()


def test_events_missing_column(tmp_path: Path) -> None:
    path = _events(tmp_path)
    pl.read_parquet(path).drop("request_id").write_parquet(path)
    result = vidrec("train", "--events", str(path), "--out", str(tmp_path / "o"), "--quiet")
    _assert_input_error(result, "events.parquet", "'request_id'")


def test_corrupt_events_parquet(tmp_path: Path) -> None:
    path = _events(tmp_path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = vidrec("train", "--events", str(path), "--out", str(tmp_path / "o"), "--quiet")
    _assert_input_error(result, "events.parquet", "Parquet")
    assert not (tmp_path / "o").exists()


def test_unknown_profile_is_named() -> None:
    result = vidrec("train", "--profile", "huge", "--out", "/tmp/never-written", "--quiet")
    _assert_input_error(result, "--profile", "huge", "demo")
    assert not Path("/tmp/never-written").exists()
