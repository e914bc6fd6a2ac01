"""Baselines: popularity order, recency weighting, and MF on a two-community matrix."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.models.baselines import fit_matrix_factorization, fit_popularity


def test_popularity_orders_by_clicks_and_scores_unseen_as_zero() -> None:
    pop = fit_popularity(np.array([7, 3, 7, 5, 3, 7]))
    assert pop.top_k(2).tolist() == [7, 3]
    np.testing.assert_array_equal(pop.score(np.array([3, 100, 7])), [2.0, 0.0, 3.0])


def test_popularity_weights_and_recency() -> None:
    ids = np.array([1, 1, 1, 2])
    days = np.array([0, 0, 0, 10])
    assert fit_popularity(ids).top_k(1).tolist() == [1]
    recent = fit_popularity(ids, days=days, half_life_days=2.0)
    assert recent.top_k(1).tolist() == [2]
    assert recent.score(np.array([1]))[0] == pytest.approx(3 * 0.5**5)
    weighted = fit_popularity(ids, weights=np.array([0, 0, 1, 5]))
    assert weighted.top_k(2).tolist() == [2, 1]
    with pytest.raises(ValueError, match="half_life_days needs"):
        fit_popularity(ids, half_life_days=1.0)


@pytest.mark.parametrize(("algorithm", "iterations"), [("als", 30), ("bpr", 300)])
def test_mf_recommends_the_users_own_community(algorithm: str, iterations: int) -> None:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), 8)
    community = users % 2
    videos = 100 + community * 50 + rng.integers(0, 20, users.size)  # 100..119 vs 150..169
    mf = fit_matrix_factorization(
        users, videos, algorithm=algorithm, factors=8, iterations=iterations, threads=1, seed=0
    )
    recs = mf.recommend(np.array([0, 1, 999]), 10)
    assert recs.shape == (3, 10)
    assert ((recs[0] >= 100) & (recs[0] < 120)).mean() >= 0.8
    assert ((recs[1] >= 150) & (recs[1] < 170)).mean() >= 0.8
    np.testing.assert_array_equal(recs[2], mf.fallback.top_k(10))  # unknown user
