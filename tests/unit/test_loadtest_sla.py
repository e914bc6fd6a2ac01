"""The SLA gate and the request mix: pure logic the locustfile calls."""

from __future__ import annotations

import math
import random

import pytest

from vidrec.loadtest.mix import DEFAULT_MIX, parse_mix, pick
from vidrec.loadtest.sla import Sla, judge


def test_gate_passes_within_both_limits() -> None:
    v = judge(p99_ms=80.0, fail_ratio=0.0005, requests=1_000, sla=Sla(100, 0.001))
    assert v.passed and v.reasons == ()
    assert "SLA PASSED" in v.describe()


@pytest.mark.parametrize(
    ("p99", "fail", "why"),
    [
        (101.0, 0.0, "p99 101.0 ms > 100 ms"),
        (50.0, 0.002, "failure ratio"),
        (math.nan, 0.0, "p99 nan"),
    ],
)
def test_gate_names_what_broke(p99: float, fail: float, why: str) -> None:
    v = judge(p99, fail, 500, Sla(100, 0.001))
    assert not v.passed
    assert any(why in r for r in v.reasons), v.reasons


def test_no_requests_is_a_failure_not_a_pass() -> None:
    assert not judge(0.0, 0.0, 0, Sla()).passed


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="p99_ms"):
        Sla(0, 0.1)
    with pytest.raises(ValueError, match="fail_ratio"):
        Sla(100, 1.5)


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
