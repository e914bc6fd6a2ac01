"""Analysis: template rendering, thresholds, and numbers → verdicts (no data is never PASS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidrec.rollout.analysis import (
    TEMPLATES,
    Placeholders,
    Threshold,
    Verdict,
    evaluate,
    judge,
    queries_for,
    render,
)
from vidrec.rollout.spec import MetricSpec
from vidrec.rollout.stats import psi

P = Placeholders.of("ranker", "stable", "cand", 60)


def metric(template: str, **kw: float | int) -> MetricSpec:
    t = TEMPLATES[template]
    fields: dict[str, float | int | None] = {
        "threshold_max": t.threshold.max,
        "threshold_min": t.threshold.min,
        "min_samples": t.min_samples,
        **kw,
    }
    return MetricSpec(template, template=template, **fields)  # type: ignore[arg-type]


def test_render_fills_placeholders_and_keeps_promql_braces() -> None:
    q = render('rate(x{variant="{candidate}",model="{model}"}[{interval}])', P)
    assert q == 'rate(x{variant="cand",model="ranker"}[60s])'


def test_p99_template_is_the_histogram_quantile_per_variant() -> None:
    qs = queries_for(metric("latency-p99-ratio"), P)
    assert qs["candidate"] == (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(vidrec_request_seconds_bucket{variant="cand"}[60s])))'
    )
    assert 'variant="stable"' in qs["stable"]


def test_every_template_renders_without_leftover_placeholders() -> None:
    for name in TEMPLATES:
        for q in queries_for(metric(name), P).values():
            assert "{candidate}" not in q and "{interval}" not in q and "[60s]" in q


def test_raw_query_metric() -> None:
    m = MetricSpec("up", query='up{job="{model}"}', threshold_min=1)
    assert queries_for(m, P) == {"value": 'up{job="ranker"}'}
    assert evaluate(m, {"value": 1.0}).verdict is Verdict.PASS
    assert evaluate(m, {"value": 0.0}).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("value", "threshold", "verdict"),
    [
        (1.0, Threshold(max=1.2), Verdict.PASS),
        (1.3, Threshold(max=1.2), Verdict.FAIL),
        (0.01, Threshold(min=0.05), Verdict.FAIL),
        (0.5, Threshold(0.1, 0.9), Verdict.PASS),
        (0.95, Threshold(0.1, 0.9), Verdict.FAIL),
        (1.2, Threshold(max=1.2), Verdict.PASS),
        (math.nan, Threshold(max=1.0), Verdict.INCONCLUSIVE),
        (math.inf, Threshold(max=2), Verdict.FAIL),
    ],
)
def test_judge(value: float, threshold: Threshold, verdict: Verdict) -> None:
    assert judge(value, threshold) is verdict


def test_latency_ratio_fail_reason_names_value_and_threshold() -> None:
    r = evaluate(metric("latency-p99-ratio"), {"candidate": 0.09, "stable": 0.05})
    assert r.verdict is Verdict.FAIL and r.value == pytest.approx(1.8)
    assert r.reason == "latency-p99-ratio = 1.8, outside max 1.2"


def test_missing_values_are_inconclusive_never_pass() -> None:
    r = evaluate(metric("latency-p99-ratio"), {"candidate": 0.05, "stable": None})
    assert (r.verdict, r.value) == (Verdict.INCONCLUSIVE, None)
    assert "no data for stable" in r.reason
    r = evaluate(metric("latency-p99"), {"candidate": math.nan})
    assert r.verdict is Verdict.INCONCLUSIVE


def test_error_ratios() -> None:
    vals = {
        "candidate_errors": 0.5,
        "candidate_requests": 10.0,
        "stable_errors": 0.0,
        "stable_requests": 10.0,
    }
    assert evaluate(metric("error-ratio"), vals).value == pytest.approx(0.05)
    assert evaluate(metric("error-ratio-ratio"), vals).verdict is Verdict.FAIL  # x / 0
    clean = {**vals, "candidate_errors": 0.0}
    assert evaluate(metric("error-ratio-ratio"), clean).value == 1.0  # 0 / 0: the same
    idle = {**vals, "candidate_requests": 0.0}
    assert evaluate(metric("error-ratio"), idle).verdict is Verdict.INCONCLUSIVE  # no traffic
    assert "or vector(0)" in queries_for(metric("error-ratio"), P)["candidate_errors"]


def test_ctr_test_below_min_samples_is_inconclusive_then_fails_when_worse() -> None:
    m = metric("ctr-test")  # min 1000 impressions per variant, min p 0.05
    few = {
        "candidate_clicks": 5.0,
        "candidate_impressions": 100.0,
        "stable_clicks": 30.0,
        "stable_impressions": 100.0,
    }
    r = evaluate(m, few)
    assert r.verdict is Verdict.INCONCLUSIVE and "100 samples, need 1000" in r.reason
    worse = {
        "candidate_clicks": 90.0,
        "candidate_impressions": 1000.0,
        "stable_clicks": 120.0,
        "stable_impressions": 1000.0,
    }
    assert evaluate(m, worse).verdict is Verdict.FAIL
    same = {**worse, "candidate_clicks": 118.0}
    assert evaluate(m, same).verdict is Verdict.PASS


def test_inconsistent_counters_are_inconclusive() -> None:
    bad = {
        "candidate_clicks": 2000.0,
        "candidate_impressions": 1000.0,
        "stable_clicks": 1.0,
        "stable_impressions": 1000.0,
    }
    r = evaluate(metric("ctr-test"), bad)
    assert r.verdict is Verdict.INCONCLUSIVE and "unusable data" in r.reason


def test_watch_time_test_uses_exact_moments_from_sums_of_squares() -> None:
    rng = np.random.default_rng(3)
    cand, stable = rng.gamma(2.0, 10.0, 500), rng.gamma(2.0, 12.0, 500)

    def sums(x: np.ndarray, who: str) -> dict[str, float]:
        return {
            f"{who}_count": float(x.size),
            f"{who}_sum": float(x.sum()),
            f"{who}_squares": float((x * x).sum()),
        }

    from scipy import stats as st

    r = evaluate(metric("watch-time-test"), {**sums(cand, "candidate"), **sums(stable, "stable")})
    expected = st.ttest_ind(cand, stable, equal_var=False, alternative="less").pvalue
    assert r.value == pytest.approx(expected, rel=1e-6)
    assert r.verdict is (Verdict.FAIL if expected < 0.05 else Verdict.PASS)
    few = evaluate(
        metric("watch-time-test"), {**sums(cand[:50], "candidate"), **sums(stable, "stable")}
    )
    assert few.verdict is Verdict.INCONCLUSIVE


def test_score_psi_from_cumulative_buckets() -> None:
    m = metric("score-psi")
    keys = list(queries_for(m, P))
    les = [k.removeprefix("candidate_le_") for k in keys if k.startswith("candidate_le_")]
    assert les[-1] == "+Inf" and len(les) == 20
    stable_bins = [50.0] * 20
    cand_bins = [100.0] * 10 + [0.0] * 10

    def cumulative(bins: list[float], who: str) -> dict[str, float]:
        return {f"{who}_le_{le}": float(sum(bins[: i + 1])) for i, le in enumerate(les)}

    vals = {**cumulative(cand_bins, "candidate"), **cumulative(stable_bins, "stable")}
    r = evaluate(m, vals)
    assert r.value == pytest.approx(psi(stable_bins, cand_bins))
    assert r.verdict is Verdict.FAIL
    same = {**cumulative(stable_bins, "candidate"), **cumulative(stable_bins, "stable")}
    assert evaluate(m, same).verdict is Verdict.PASS
