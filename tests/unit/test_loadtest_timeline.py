"""Per-second timelines, windows, the run summary round trip, capacity steps, chaos recovery."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vidrec_dev.loadtest.capacity import judge_step
from vidrec_dev.loadtest.chaos import recovery_time
from vidrec_dev.loadtest.sla import Sla, judge
from vidrec_dev.loadtest.timeline import (
    Recorder,
    RunSummary,
    Second,
    between,
    merge_timelines,
    percentile,
    read_summary,
    window,
)


def sec(t: int, n: int = 10, ms: float = 10.0, fail: int = 0, degraded: int = 0) -> Second:
    s = Second(t)
    for i in range(n):
        s.add(ms, i < fail, i < fail, i < degraded, i >= fail)
    return s


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert percentile([5.0], 0.99) == 5.0


def test_recorder_bins_by_second_and_window_aggregates() -> None:
    rec = Recorder()
    rec.record(100.2, 5.0, False, False, False, True)
    rec.record(100.9, 15.0, True, True, False, False)
    rec.record(101.1, 25.0, False, False, True, True)
    tl = rec.timeline()
    assert [s.t for s in tl] == [100, 101]
    w = window(tl)
    assert (w.requests, w.failures, w.server_errors, w.degraded, w.answers) == (3, 1, 1, 1, 2)
    assert w.rps == pytest.approx(1.5)
    assert w.degraded_ratio == pytest.approx(0.5)
    assert w.p50_ms == pytest.approx(15.0)


def test_a_failed_call_is_not_counted_as_a_degraded_answer() -> None:
    rec = Recorder()
    rec.record(100.0, 5.0, True, False, True, False)  # failed, body said degraded
    rec.record(100.1, 5.0, False, False, False, False)  # an engagement event
    w = window(rec.timeline())
    assert (w.degraded, w.answers) == (0, 0)
    assert math.isnan(w.degraded_ratio)  # no answers: no share, not 0 %


def test_merge_adds_seconds_of_two_processes() -> None:
    merged = merge_timelines([sec(1), sec(2)], [sec(2, n=5, ms=50.0)])
    assert [s.requests for s in merged] == [10, 15]
    assert max(merged[1].latencies_ms) == 50.0


def test_summary_round_trips(tmp_path: Path) -> None:
    sla = Sla(100, 0.001)
    s = RunSummary(
        sla=sla,
        verdict=judge(10, 0, 20, sla, degraded_ratio=0.05),
        users=2,
        started_at=1.0,
        ended_at=3.0,
        requests=20,
        failures=0,
        p50_ms=5,
        p99_ms=10,
        rps=10,
        by_name={"GET home": {"requests": 20.0}},
        accepted_events=[("e-1", 7)],
        timeline=[sec(1), sec(2)],
        degraded=1,
        answers=20,
    )
    back = read_summary(s.save(tmp_path / "s.json"))
    assert back == s
    assert back.degraded_ratio == pytest.approx(0.05)
    assert back.verdict.degraded_ratio == pytest.approx(0.05)


def summary(timeline: list[Second], start: float, end: float) -> RunSummary:
    sla = Sla()
    verdict = judge(1, 0, 1, sla, degraded_ratio=0.0)
    return RunSummary(sla, verdict, 1, start, end, 1, 0, 1, 1, 1, {}, [], timeline)


def test_capacity_step_leaves_out_warmup_and_judges_the_rest() -> None:
    tl = [sec(100, ms=900.0)] + [sec(t, n=20, ms=40.0) for t in range(101, 111)]
    step = judge_step(summary(tl, 100.0, 111.5), users=4, sla=Sla(100, 0.001), warmup_s=1)
    assert step.passed and step.rps == pytest.approx(20.0) and step.p99_ms == pytest.approx(40)
    slow = judge_step(summary(tl, 100.0, 111.5), users=4, sla=Sla(100, 0.001), warmup_s=0)
    assert not slow.passed  # the slow first second counts now


def test_capacity_step_breaks_when_too_many_answers_are_degraded() -> None:
    """Fast and error-free, but 2 of 20 answers a second degraded: 10 % > the 1 % limit."""
    tl = [sec(t, n=20, ms=40.0, degraded=2) for t in range(100, 110)]
    step = judge_step(summary(tl, 100.0, 110.5), users=4, sla=Sla(100, 0.001, 0.01), warmup_s=0)
    assert not step.passed and step.degraded_ratio == pytest.approx(0.1)
    assert step.p99_ms <= 100 and step.fail_ratio == 0
    assert step.reasons == ("degraded share 10.00% > 1.00%",)
    lenient = judge_step(summary(tl, 100.0, 110.5), users=4, sla=Sla(100, 0.001, 0.2), warmup_s=0)
    assert lenient.passed and lenient.reasons == ()


def test_recovery_is_the_first_healthy_window_after_the_undo() -> None:
    tl = [sec(t) for t in range(0, 10)]  # before the fault: healthy
    tl += [sec(t, fail=3) for t in range(10, 20)]  # the fault
    tl += [sec(20, degraded=8), sec(21, fail=1), sec(22), sec(23), sec(24), sec(25)]
    assert recovery_time(tl, undone_at=19.5, baseline_degraded=0.0, ended_at=30) == 2.5
    assert recovery_time(tl[:23], undone_at=19.5, baseline_degraded=0.0, ended_at=30) is None
    # degraded answers below the pre-fault level + slack count as healthy
    noisy = [sec(20, degraded=3), sec(21, degraded=2), sec(22, degraded=3)]
    assert recovery_time(noisy, undone_at=20, baseline_degraded=0.2, ended_at=30) == 0.0
    assert recovery_time(noisy, undone_at=20, baseline_degraded=0.0, ended_at=30) is None


def test_between_is_half_open() -> None:
    assert [s.t for s in between([sec(t) for t in range(5)], 1, 3)] == [1, 2]


def test_plot_timeline_draws_latency_and_shares(tmp_path: Path) -> None:
    from vidrec_dev.loadtest.report import plot_timeline
    from vidrec_dev.loadtest.timeline import Second

    seconds = [Second(t=100 + i) for i in range(5)]
    for i, s in enumerate(seconds):
        for j in range(10):
            s.add(20.0 + i + j, failed=j == 0 and i == 2, server_error=False,
                  degraded=j < i, answer=j != 0)  # fmt: skip
    seconds.append(Second(t=105))  # an empty second: NaN shares, not a ZeroDivisionError
    out = plot_timeline(seconds, tmp_path / "t.png", title="t", marks=[(102.0, "fault")])
    assert out.stat().st_size > 10_000
