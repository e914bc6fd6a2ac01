"""Metrics against brute-force hand computations on tiny inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.models.metrics import (
    auc,
    exclude_seen,
    grouped_ndcg_at_k,
    grouped_recall_at_k,
    grouped_top_k_mean,
    hit_matrix,
    ndcg_at_k,
    recall_at_k,
    split_by_day,
)


def test_recall_and_ndcg_match_hand_computation() -> None:
    recommended = np.array([[10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]])
    # user 0 wants {11, 13, 99}; user 1 wants {20}; user 2 wants nothing (ignored).
    rel_user = np.array([0, 0, 0, 1, 1])
    rel_item = np.array([11, 13, 99, 20, 20])  # a duplicate pair counts once
    hits, n_rel = hit_matrix(recommended, rel_user, rel_item)
    assert n_rel.tolist() == [3, 1, 0]
    assert hits.tolist()[0] == [False, True, False, True]

    assert recall_at_k(hits, n_rel, 2) == pytest.approx((1 / 3 + 1) / 2)
    assert recall_at_k(hits, n_rel, 4) == pytest.approx((2 / 3 + 1) / 2)
    dcg0 = 1 / math.log2(3) + 1 / math.log2(5)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # min(|rel|=3, k=4) ideal hits
    assert ndcg_at_k(hits, n_rel, 4) == pytest.approx((dcg0 / idcg0 + 1.0) / 2)
    dcg0_k2 = 1 / math.log2(3)
    assert ndcg_at_k(hits, n_rel, 2) == pytest.approx((dcg0_k2 / (1 + 1 / math.log2(3)) + 1) / 2)


def _brute_auc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5).map(float), st.integers(0, 1)), min_size=2, max_size=30
    ).filter(lambda r: 0 < sum(y for _, y in r) < len(r))
)
def test_auc_equals_pairwise_count_with_ties(rows: list[tuple[float, int]]) -> None:
    scores, labels = zip(*rows, strict=True)
    got = auc(np.array(scores), np.array(labels))
    assert got == pytest.approx(_brute_auc(list(scores), list(labels)))


def test_auc_of_a_single_class_is_nan() -> None:
    assert math.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))


def _brute_grouped_ndcg(group: list[str], scores: list[float], gains: list[float], k: int) -> float:
    values = []
    for g in dict.fromkeys(group):
        idx = [i for i, x in enumerate(group) if x == g]
        by_score = sorted(idx, key=lambda i: (-scores[i], i))[:k]
        ideal = sorted((gains[i] for i in idx), reverse=True)[:k]
        idcg = sum(v / math.log2(r + 2) for r, v in enumerate(ideal))
        if idcg > 0:
            values.append(sum(gains[i] / math.log2(r + 2) for r, i in enumerate(by_score)) / idcg)
    return sum(values) / len(values)


def test_grouped_ndcg_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    group = [f"r{g}" for g in rng.integers(0, 7, 60)]
    scores = rng.integers(0, 4, 60).astype(float)  # many ties: input order breaks them
    gains = (rng.random(60) < 0.3) * rng.integers(1, 100, 60).astype(float)
    for k in (1, 3, 10):
        got = grouped_ndcg_at_k(np.array(group), scores, gains, k)
        assert got == pytest.approx(_brute_grouped_ndcg(group, list(scores), list(gains), k))


def test_grouped_ndcg_perfect_and_reversed_ranking() -> None:
    group = np.array(["a", "a", "a", "b", "b"])
    gains = np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    assert grouped_ndcg_at_k(group, gains, gains, 10) == pytest.approx(1.0)
    reversed_a = grouped_ndcg_at_k(group[:3], -gains[:3], gains[:3], 10)
    assert reversed_a == pytest.approx(1 / math.log2(4))  # the click lands last, rank 3 of 3


def test_grouped_top_k_mean_averages_each_groups_top_items() -> None:
    group = np.array([1, 1, 1, 2, 2])
    scores = np.array([0.9, 0.1, 0.5, 0.2, 0.3])
    watch = np.array([100.0, 1.0, 10.0, 7.0, 3.0])
    assert grouped_top_k_mean(group, scores, watch, 2) == pytest.approx(((100 + 10) / 2 + 5) / 2)


def test_split_by_day_holds_out_the_last_two_days() -> None:
    df = pl.DataFrame({"day": [0, 3, 1, 3, 2, 0], "v": range(6)})
    train, valid, test = split_by_day(df)
    assert sorted(train["day"].to_list()) == [0, 0, 1]
    assert valid["day"].to_list() == [2]
    assert test["day"].to_list() == [3, 3]
    with pytest.raises(ValueError, match="column 'day' has 2 distinct days"):
        split_by_day(df.filter(pl.col("day") < 2))
    with pytest.raises(ValueError, match="missing column 'day'"):
        split_by_day(df.drop("day"))


def test_exclude_seen_drops_history_and_moves_the_rest_up() -> None:
    recommended = np.array([[10, 20, 30, 40], [30, 20, 10, -1]])
    # row 0 has seen 10 and 30; row 1 has seen 20 (and 99, not in its list)
    out = exclude_seen(recommended, np.array([0, 0, 1, 1]), np.array([10, 30, 20, 99]), 3)
    np.testing.assert_array_equal(out, [[20, 40, -1], [30, 10, -1]])
    none_seen = exclude_seen(recommended, np.zeros(0, np.int64), np.zeros(0, np.int64), 5)
    np.testing.assert_array_equal(none_seen, [[10, 20, 30, 40, -1], [30, 20, 10, -1, -1]])


def test_grouped_recall_counts_each_groups_relevant_rows_in_its_top_k() -> None:
    group = np.array([1, 1, 1, 2, 2, 3])
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.3, 0.7])
    relevant = np.array([1, 0, 1, 1, 0, 0])
    # group 1: top 2 = rows 0,1 -> 1 of 2; group 2: top 2 holds its one; group 3 has none
    assert grouped_recall_at_k(group, scores, relevant, 2) == pytest.approx((0.5 + 1.0) / 2)
    assert grouped_recall_at_k(group, scores, relevant, 1) == pytest.approx((0.5 + 0.0) / 2)
    assert np.isnan(grouped_recall_at_k(group, scores, np.zeros(6), 2))
