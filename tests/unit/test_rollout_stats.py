"""Quality statistics against scipy on raw samples and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from vidrec.rollout.stats import psi, two_proportion_test, welch_test


def test_two_proportion_matches_a_hand_computed_z() -> None:
    # candidate 90/1000, stable 120/1000: pooled 0.105, se = sqrt(.105*.895*2/1000)
    se = math.sqrt(0.105 * 0.895 * 0.002)
    z = (0.09 - 0.12) / se
    p = two_proportion_test(90, 1000, 120, 1000)
    assert p == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-12)
    assert p < 0.05  # significantly worse


def test_two_proportion_is_one_sided() -> None:
    assert two_proportion_test(120, 1000, 90, 1000) > 0.95  # candidate better: no alarm
    assert two_proportion_test(100, 1000, 100, 1000) == pytest.approx(0.5)
    assert two_proportion_test(0, 10, 0, 10) == 1.0  # no clicks anywhere: no evidence


def test_two_proportion_agrees_with_scipy_chi2_on_the_2x2_table() -> None:
    p_one = two_proportion_test(90, 1000, 120, 1000)
    table = [[90, 910], [120, 880]]
    _chi2, p_two, _, _ = st.chi2_contingency(table, correction=False)
    assert 2 * p_one == pytest.approx(p_two, rel=1e-9)


@pytest.mark.parametrize("bad", [(5, 0, 1, 10), (11, 10, 1, 10), (-1, 10, 1, 10)])
def test_two_proportion_rejects_impossible_counts(bad: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="clicks_"):
        two_proportion_test(*bad)


def test_welch_matches_scipy_on_raw_samples() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(10.0, 3.0, 400), rng.normal(11.5, 5.0, 300)
    expected = st.ttest_ind(a, b, equal_var=False, alternative="less").pvalue
    got = welch_test(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    assert got == pytest.approx(expected, rel=1e-9)
    assert got < 0.05


def test_welch_degenerate_variances() -> None:
    assert welch_test(5.0, 0.0, 10, 5.0, 0.0, 10) == 1.0
    assert welch_test(4.0, 0.0, 10, 5.0, 0.0, 10) == 0.0
    with pytest.raises(ValueError, match="var_a/n_a"):
        welch_test(1.0, 1.0, 1, 1.0, 1.0, 10)


def test_psi_by_hand() -> None:
    expected, actual = [50, 30, 20], [30, 30, 40]
    by_hand = sum(
        (a - e) * math.log(a / e) for e, a in zip([0.5, 0.3, 0.2], [0.3, 0.3, 0.4], strict=True)
    )
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)  # shares, not counts, matter
    assert psi(expected, actual) == pytest.approx(psi(actual, expected))  # symmetric


def test_psi_tolerates_empty_bins_and_rejects_bad_histograms() -> None:
    assert math.isfinite(psi([10, 0], [5, 5])) and psi([10, 0], [5, 5]) > 0.25
    with pytest.raises(ValueError, match="equal length"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="positive total"):
        psi([0, 0], [1, 1])
