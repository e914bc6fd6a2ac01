"""Workload files, generated events and the Locust command line."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vidrec.schema import EngagementEvent, RelatedQuery, TrendingQuery
from vidrec_dev.loadtest.locust_run import LOCUSTFILE, LocustSpec
from vidrec_dev.loadtest.sla import Sla
from vidrec_dev.loadtest.workload import EventMaker, Workload, kuairec_ranges, load_workload, query


def test_workload_file_round_trips(tmp_path: Path) -> None:
    w = Workload((1, 2), (10, 11, 12), (5_000, 6_000, 7_000))
    assert load_workload(w.save(tmp_path / "w.json")) == w
    assert load_workload(None) == kuairec_ranges()


def test_bad_workload_file_names_the_option(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="--users-file"):
        load_workload(tmp_path / "bad.json")


def test_events_are_valid_unique_and_tagged() -> None:
    maker = EventMaker(Workload((3, 4), (10, 11), (9_000, 12_000)), "run1-42")
    rng = random.Random(1)
    events = [e for _ in range(200) for e in maker.batch(rng, 1_700_000_000_000)]
    parsed = [EngagementEvent.model_validate(e) for e in events]
    assert len({e.event_id for e in parsed}) == len(parsed)
    assert all(e.event_id.startswith("run1-42-") for e in parsed)
    assert {e.type.value for e in parsed} == {"impression", "click", "watch"}
    assert all(e.watch_ms <= e.video_duration_ms for e in parsed if e.type.value == "watch")


def test_queries_are_valid_api_queries() -> None:
    rng, w = random.Random(0), kuairec_ranges()
    RelatedQuery.model_validate(query("related", rng, w))
    TrendingQuery.model_validate(query("trending", rng, w))
    assert query("home", rng, w)["count"] == 20
    with pytest.raises(ValueError):
        query("events", rng, w)


def test_locust_command_line(tmp_path: Path) -> None:
    spec = LocustSpec(
        host="http://h:1",
        users=5,
        run_time_s=12.4,
        out_prefix=tmp_path / "r",
        sla=Sla(250, 0.01, 0.05),
        classes=("HttpApiUser", "GrpcApiUser"),
        api_key="k",
        mix="home=1",
    )
    argv = spec.argv()
    assert argv[1:3] == ["-f", str(LOCUSTFILE)] and LOCUSTFILE.is_file()
    joined = " ".join(argv)
    for part in (
        "--headless",
        "-u 5",
        "-r 5",
        "-t 12s",
        "--host http://h:1",
        "--sla-p99-ms 250",
        "--sla-fail-ratio 0.01",
        "--sla-degraded-ratio 0.05",
        "--api-key k",
        "--mix home=1",
        f"--csv {tmp_path / 'r'}",
        f"--summary-file {tmp_path / 'r'}_summary.json",
    ):
        assert part in joined, part
    assert argv[-2:] == ["HttpApiUser", "GrpcApiUser"]
