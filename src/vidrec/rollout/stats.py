"""Statistical tests that compare a candidate's online quality with the stable's.

One-sided: a rollout should stop when the candidate is significantly *worse*, not merely
different, so each p-value is P(data at least this bad | candidate no worse than stable).
Small p → FAIL (templates use ``thresholdMin: 0.05``). Callers check the minimum sample
size first; these functions only reject inputs that are not counts or variances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats as st

PSI_EPS = 1e-4  # floor for empty bins, so one empty bin does not make PSI infinite


def two_proportion_test(clicks_a: float, n_a: float, clicks_b: float, n_b: float) -> float:
    """p-value of H0: rate_a >= rate_b against H1: rate_a < rate_b (pooled z-test).

    ``a`` is the candidate, ``b`` the stable. Equal pooled rates of 0 or 1 carry no
    evidence either way: p = 1.
    """
    for name, k, n in (("a", clicks_a, n_a), ("b", clicks_b, n_b)):
        if n <= 0 or not 0 <= k <= n:
            raise ValueError(f"clicks_{name}/n_{name}: need 0 <= clicks <= n, n > 0; got {k}/{n}")
    pooled = (clicks_a + clicks_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (clicks_a / n_a - clicks_b / n_b) / se
    return float(st.norm.cdf(z))


def welch_test(
    mean_a: float, var_a: float, n_a: float, mean_b: float, var_b: float, n_b: float
) -> float:
    """p-value of H0: mean_a >= mean_b against H1: mean_a < mean_b (Welch's unequal-variance
    t-test from summary statistics, as :func:`scipy.stats.ttest_ind_from_stats`)."""
    for name, var, n in (("a", var_a, n_a), ("b", var_b, n_b)):
        if n < 2 or var < 0:
            raise ValueError(f"var_{name}/n_{name}: need var >= 0 and n >= 2; got {var}/{n}")
    if var_a == 0 and var_b == 0:
        return 1.0 if mean_a >= mean_b else 0.0
    res = st.ttest_ind_from_stats(
        mean_a, math.sqrt(var_a), n_a, mean_b, math.sqrt(var_b), n_b,
        equal_var=False, alternative="less",
    )  # fmt: skip
    return float(res.pvalue)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two histograms over the same bins (counts or shares).

    sum((a - e) * ln(a / e)) over bin shares; < 0.1 stable, 0.1–0.25 drifting, > 0.25 shifted.
    """
    if len(expected) != len(actual) or not expected:
        raise ValueError(
            f"psi: need two histograms of equal length, got {len(expected)}/{len(actual)}"
        )
    if min(expected) < 0 or min(actual) < 0:
        raise ValueError("psi: bin counts must be >= 0")
    te, ta = sum(expected), sum(actual)
    if te <= 0 or ta <= 0:
        raise ValueError("psi: each histogram needs a positive total")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / te, PSI_EPS), max(a / ta, PSI_EPS)
        total += (pa - pe) * math.log(pa / pe)
    return total
