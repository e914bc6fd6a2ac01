"""The SLA gate and the request mix: pure logic the locustfile calls."""

from __future__ import annotations

import math
import random

import pytest

from vidrec_dev.loadtest.mix import DEFAULT_MIX, parse_mix, pick
from vidrec_dev.loadtest.sla import Sla, judge


def test_gate_passes_within_all_limits() -> None:
    v = judge(80.0, 0.0005, 1_000, Sla(100, 0.001, 0.01), degraded_ratio=0.009)
    assert v.passed and v.reasons == ()
    assert v.describe().startswith("SLA PASSED")
    assert "degraded 0.90%" in v.describe()  # reported beside p99 and failures


@pytest.mark.parametrize(
    ("p99", "fail", "degraded", "why"),
    [
        (101.0, 0.0, 0.0, "p99 101.0 ms > 100 ms"),
        (50.0, 0.002, 0.0, "failure ratio"),
        (math.nan, 0.0, 0.0, "p99 nan"),
        (50.0, 0.0, 0.011, "degraded share 1.10% > 1.00%"),
    ],
)
def test_gate_names_what_broke(p99: float, fail: float, degraded: float, why: str) -> None:
    v = judge(p99, fail, 500, Sla(100, 0.001, 0.01), degraded_ratio=degraded)
    assert not v.passed
    assert any(why in r for r in v.reasons), v.reasons
    assert why in v.describe()


def test_degraded_answers_break_the_sla_by_default() -> None:
    """A fast, error-free run served mostly degraded is not a pass (the default limit: 1 %)."""
    v = judge(20.0, 0.0, 1_000, Sla(), degraded_ratio=0.8)
    assert not v.passed and v.degraded_ratio == pytest.approx(0.8)
    assert judge(20.0, 0.0, 1_000, Sla(), degraded_ratio=0.01).passed  # at the limit: met


def test_no_recommendation_answers_leave_the_degraded_limit_out() -> None:
    v = judge(20.0, 0.0, 100, Sla(100, 0.001, 0.0), degraded_ratio=math.nan)
    assert v.passed and "degraded n/a" in v.describe()


def test_no_requests_is_a_failure_not_a_pass() -> None:
    assert not judge(0.0, 0.0, 0, Sla(), degraded_ratio=math.nan).passed


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="p99_ms"):
        Sla(0, 0.1)
    with pytest.raises(ValueError, match="fail_ratio"):
        Sla(100, 1.5)
    with pytest.raises(ValueError, match="degraded_ratio"):
        Sla(100, 0.1, -0.01)
    assert "degraded ≤ 1.00%" in Sla().describe()


def test_default_mix_is_the_one_users_asked_for() -> None:
    mix = parse_mix(None)
    assert mix == pytest.approx({k: v / 100 for k, v in DEFAULT_MIX.items()})
    assert mix["home"] == pytest.approx(0.70) and mix["events"] == pytest.approx(0.10)


def test_mix_parses_normalises_and_leaves_out_kinds() -> None:
    assert parse_mix("home=3,events=1") == pytest.approx(
        {"home": 0.75, "related": 0.0, "trending": 0.0, "events": 0.25}
    )


@pytest.mark.parametrize("bad", ["home", "feed=1", "home=x", "home=-1", "home=0"])
def test_bad_mix_is_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="--mix"):
        parse_mix(bad)


def test_pick_follows_the_weights() -> None:
    rng = random.Random(0)
    mix = parse_mix(None)
    draws = [pick(rng, mix) for _ in range(20_000)]
    for kind, share in mix.items():
        assert draws.count(kind) / len(draws) == pytest.approx(share, abs=0.015)
