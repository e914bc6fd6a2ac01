"""Offline metrics, vectorised: time split, Recall/NDCG@K, AUC, per-request NDCG and watch time.

All functions take plain arrays so they can be checked against hand computations; the
table-level wiring lives in :mod:`vidrec.models.evaluate`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import rankdata

from vidrec.errors import InputError
from vidrec.models.calibration import log_loss
from vidrec.models.frames import require_columns

__all__ = [
    "auc",
    "exclude_seen",
    "grouped_ndcg_at_k",
    "grouped_recall_at_k",
    "grouped_top_k_mean",
    "hit_matrix",
    "log_loss",
    "ndcg_at_k",
    "recall_at_k",
    "split_by_day",
]


def split_by_day(
    df: pl.DataFrame, table: str = "examples"
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(train, valid, test)``: the last day is test, the day before valid, the rest train."""
    require_columns(df, ("day",), table)
    days = df["day"].unique().sort().to_list()
    if len(days) < 3:
        raise InputError(f"{table}: column 'day' has {len(days)} distinct days, need at least 3")
    valid_day, test_day = days[-2], days[-1]
    return (
        df.filter(pl.col("day") < valid_day),
        df.filter(pl.col("day") == valid_day),
        df.filter(pl.col("day") == test_day),
    )


def hit_matrix(
    recommended: np.ndarray, relevant_user: np.ndarray, relevant_item: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``hits[u, r]`` = recommended[u, r] is relevant to user row u; and |relevant| per row.

    ``recommended`` is int ``[U, K]`` (no repeats within a row); ``relevant_user`` indexes
    its rows, pairing with ``relevant_item``. Duplicate relevant pairs count once.
    """
    n_users = recommended.shape[0]
    if relevant_user.size and (relevant_user.min() < 0 or relevant_user.max() >= n_users):
        raise ValueError("hit_matrix: relevant_user must index rows of recommended")
    span = int(max(recommended.max(initial=0), relevant_item.max(initial=0))) + 1
    keys = np.unique(relevant_user.astype(np.int64) * span + relevant_item.astype(np.int64))
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * span + recommended.astype(np.int64)
    hits = np.isin(rec_keys, keys) & (recommended >= 0)
    n_relevant = np.bincount(keys // span, minlength=n_users)
    return hits, n_relevant


def exclude_seen(
    recommended: np.ndarray, seen_user: np.ndarray, seen_item: np.ndarray, k: int
) -> np.ndarray:
    """The first ``k`` ids of each row that its user has not seen, in order; ``-1`` pads.

    The filtered protocol: an item from the user's training history is not a recommendation
    the user needs, so it leaves the list and the next one moves up. ``seen_user`` indexes
    rows of ``recommended``, pairing with ``seen_item``; ``-1`` entries count as seen.
    """
    if seen_user.size:
        masked, _ = hit_matrix(recommended, seen_user, seen_item)
    else:
        masked = np.zeros(recommended.shape, dtype=bool)
    masked |= recommended < 0
    order = np.argsort(masked, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(recommended, order, axis=1)
    out[np.take_along_axis(masked, order, axis=1)] = -1
    if out.shape[1] < k:
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])), constant_values=-1)
    return out


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Mean over users with any relevant item of |relevant ∩ top-k| / |relevant|."""
    users = n_relevant > 0
    if not users.any():
        return float("nan")
    found = hits[users, :k].sum(axis=1)
    return float(np.mean(found / n_relevant[users]))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Binary-gain NDCG@k, averaged over users with any relevant item."""
    users = n_relevant > 0
    if not users.any():
        return float("nan")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    top = hits[users, :k]
    dcg = (top * discount[: top.shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_relevant[users], k) - 1]
    return float(np.mean(dcg / ideal))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney rank sum (ties count half); NaN for a single class."""
    y = labels.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _rank_within_groups(group: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order sorted by (group, score desc, input order) and each row's 0-based rank."""
    order = np.lexsort((np.arange(scores.size), -scores, group))
    g = group[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    lengths = np.diff(np.r_[starts, g.size])
    rank = np.arange(g.size) - np.repeat(starts, lengths)
    return order, rank


def _group_codes(group: np.ndarray) -> np.ndarray:
    codes: np.ndarray = np.unique(group, return_inverse=True)[1].ravel()
    return codes


def grouped_ndcg_at_k(group: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    """Mean NDCG@k over groups (requests) that have any positive gain.

    Within a group items are ranked by ``scores`` (ties keep input order); the ideal ranks by
    ``gains``. DCG = Σ gain / log2(rank + 2) over the top k.
    """
    if not group.size:
        return float("nan")
    codes = _group_codes(group)
    n_groups = int(codes.max()) + 1
    gains = gains.astype(np.float64)

    def dcg(by: np.ndarray) -> np.ndarray:
        order, rank = _rank_within_groups(codes, by)
        top = rank < k
        weights = gains[order][top] / np.log2(rank[top] + 2.0)
        return np.bincount(codes[order][top], weights=weights, minlength=n_groups)

    ideal = dcg(gains)
    scored = ideal > 0
    if not scored.any():
        return float("nan")
    return float(np.mean(dcg(scores.astype(np.float64))[scored] / ideal[scored]))


def grouped_recall_at_k(
    group: np.ndarray, scores: np.ndarray, relevant: np.ndarray, k: int
) -> float:
    """Mean over groups with any relevant row of |relevant ∩ top-k by ``scores``| / |relevant|."""
    if not group.size:
        return float("nan")
    codes = _group_codes(group)
    n_groups = int(codes.max()) + 1
    rel = relevant.astype(bool)
    order, rank = _rank_within_groups(codes, scores.astype(np.float64))
    top = (rank < k) & rel[order]
    found = np.bincount(codes[order][top], minlength=n_groups)
    total = np.bincount(codes[rel], minlength=n_groups)
    scored = total > 0
    if not scored.any():
        return float("nan")
    return float(np.mean(found[scored] / total[scored]))


def grouped_top_k_mean(group: np.ndarray, scores: np.ndarray, values: np.ndarray, k: int) -> float:
    """Mean over groups of the mean ``values`` of each group's top-k items by ``scores``."""
    if not group.size:
        return float("nan")
    codes = _group_codes(group)
    n_groups = int(codes.max()) + 1
    order, rank = _rank_within_groups(codes, scores.astype(np.float64))
    top = rank < k
    top_codes = codes[order][top]
    sums = np.bincount(top_codes, weights=values[order][top].astype(np.float64), minlength=n_groups)
    counts = np.bincount(top_codes, minlength=n_groups)
    return float(np.mean(sums / counts))
