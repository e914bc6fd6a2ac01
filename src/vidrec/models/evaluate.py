"""Offline evaluation on the test day, each model next to its baselines, as one flat dict.

Keys are stable (the manifest, the report and the quality gate read them):
``retrieval.{recall,ndcg}@K``, ``retrieval.{popularity,mf}_{recall,ndcg}@K`` for K in
:data:`RETRIEVAL_KS`; ``ranking.{auc,logloss}.<head>``, ``ranking.popularity_auc.<head>``,
``ranking.ndcg@10`` / ``ranking.popularity_ndcg@10`` (gain = click),
``ranking.watch_ndcg@10`` / ``ranking.popularity_watch_ndcg@10`` (gain = watch_ms),
``ranking.watch_time@3`` / ``ranking.popularity_watch_time@3`` (mean watch_ms of the top 3: a
slate holds about 10 items, so the top 10 would be the whole slate whatever the order).
These ``retrieval.*`` keys are the unfiltered protocol.

The protocol the field reports (:func:`evaluate_top_k`, :func:`evaluate_slates`) is under
``eval.<model>.{recall,ndcg}@K`` for K in :data:`EVAL_KS` and model in
:data:`EVAL_MODELS`: filtered by default (items in the user's training history leave the
ranked list and the relevant set, so re-recommending history earns nothing), unfiltered on
request. ``eval.ranker.*`` ranks each test request's slate, ``eval.slate_popularity.*`` ranks
the same slates by popularity. A metric the test data cannot support (no negatives, a single
class, slates shorter than K) is not a number but a reason in ``Evaluation.undefined``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from vidrec.config import TrainConfig
from vidrec.errors import InputError
from vidrec.models.baselines import (
    MatrixFactorization,
    Popularity,
    fit_matrix_factorization,
    fit_popularity,
)
from vidrec.models.calibration import log_loss
from vidrec.models.frames import float_matrix, int_matrix, int_vector, require_columns
from vidrec.models.metrics import (
    auc,
    exclude_seen,
    grouped_ndcg_at_k,
    grouped_recall_at_k,
    grouped_top_k_mean,
    hit_matrix,
    ndcg_at_k,
    recall_at_k,
)
from vidrec.models.mmoe import RANKER_TABLE, RankerServing, predict, ranker_data
from vidrec.models.two_tower import RETRIEVAL_TABLE, TwoTowerResult, user_embeddings
from vidrec.schema import RANKER_HEADS

RETRIEVAL_KS: tuple[int, ...] = (50, 100, 500)
RANKING_K = 10
WATCH_K = 3
EVAL_KS: tuple[int, ...] = (10, 20, 50, 100)
EVAL_MODELS: tuple[str, ...] = ("two_tower", "popularity", "als")
SLATE_MODELS: tuple[str, ...] = ("ranker", "slate_popularity")
EVAL_BATCH = 1024  # users ranked at a time: bounds the [batch, K + |history|] lists


@dataclass(frozen=True)
class Evaluation:
    """Metric values by stable key, and the keys the test data leaves undefined, with why."""

    values: dict[str, float] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)

    def __or__(self, other: Evaluation) -> Evaluation:
        return Evaluation(self.values | other.values, self.undefined | other.undefined)


def eval_key(model: str, metric: str, k: int) -> str:
    return f"eval.{model}.{metric}@{k}"


@dataclass(frozen=True)
class Baselines:
    """Popularity and ALS fitted once on the pre-test clicks, shared by every protocol."""

    popularity: Popularity
    als: MatrixFactorization | None


def fit_baselines(
    history_df: pl.DataFrame,
    cfg: TrainConfig,
    with_mf: bool = True,
    popularity_half_life_days: float | None = None,
) -> Baselines:
    table = f"{RETRIEVAL_TABLE} (history)"
    past_videos = int_vector(history_df, "video_id", table)
    past_days = int_vector(history_df, "day", table) if popularity_half_life_days else None
    popular = fit_popularity(past_videos, days=past_days, half_life_days=popularity_half_life_days)
    mf = None
    if with_mf:
        mf = fit_matrix_factorization(
            int_vector(history_df, "user_id", table),
            past_videos,
            threads=cfg.threads,
            seed=cfg.seed,
        )
    return Baselines(popularity=popular, als=mf)


@dataclass(frozen=True)
class RetrievalQueries:
    """One query per test user (state at their first test-day click) and their test clicks."""

    user_ids: np.ndarray  # int64 [U]
    user_x: np.ndarray  # float32 [U, D]
    history: np.ndarray  # int64 [U, H]
    relevant_user: np.ndarray  # row index into user_ids
    relevant_item: np.ndarray  # video id clicked on the test day


def retrieval_queries(test_df: pl.DataFrame) -> RetrievalQueries:
    """The first click's features carry no test-day information (history is strictly before)."""
    table = f"{RETRIEVAL_TABLE} (test)"
    require_columns(test_df, ("user_id", "video_id", "ts", "user_x", "history"), table)
    first = test_df.sort(["user_id", "ts"]).unique("user_id", keep="first", maintain_order=True)
    user_ids = int_vector(first, "user_id", table)
    clicked_by = int_vector(test_df, "user_id", table)
    return RetrievalQueries(
        user_ids=user_ids,
        user_x=float_matrix(first, "user_x", table),
        history=int_matrix(first, "history", table),
        relevant_user=np.searchsorted(user_ids, clicked_by),
        relevant_item=int_vector(test_df, "video_id", table),
    )


@torch.no_grad()
def top_k_by_inner_product(
    user_emb: np.ndarray, item_emb: np.ndarray, video_ids: np.ndarray, k: int, batch: int = 4096
) -> np.ndarray:
    """Exact top-k video ids per user (the ANN index's recall is measured against this)."""
    k = min(k, item_emb.shape[0])
    items = torch.from_numpy(item_emb)
    users = torch.from_numpy(user_emb)
    parts = [
        torch.topk(users[i : i + batch] @ items.T, k, dim=1).indices
        for i in range(0, users.shape[0], batch)
    ]
    rows = torch.cat(parts).numpy() if parts else np.zeros((0, k), np.int64)
    return video_ids[rows]


def _retrieval_scores(
    name: str, recommended: np.ndarray, queries: RetrievalQueries, ks: tuple[int, ...]
) -> dict[str, float]:
    hits, n_relevant = hit_matrix(recommended, queries.relevant_user, queries.relevant_item)
    prefix = "retrieval." if not name else f"retrieval.{name}_"
    out: dict[str, float] = {}
    for k in ks:
        out[f"{prefix}recall@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"{prefix}ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
    return out


def evaluate_retrieval(
    two_tower: TwoTowerResult,
    history_df: pl.DataFrame,
    test_df: pl.DataFrame,
    cfg: TrainConfig,
    ks: tuple[int, ...] = RETRIEVAL_KS,
    with_mf: bool = True,
    popularity_half_life_days: float | None = None,
    baselines: Baselines | None = None,
) -> dict[str, float]:
    """Two-tower vs popularity vs MF; baselines are fitted on ``history_df`` (pre-test clicks)."""
    if baselines is None:
        baselines = fit_baselines(history_df, cfg, with_mf, popularity_half_life_days)
    queries = retrieval_queries(test_df)
    k_max = max(ks)
    emb = user_embeddings(two_tower.user_tower, queries.user_x, queries.history)
    metrics = _retrieval_scores(
        "",
        top_k_by_inner_product(emb, two_tower.item_embeddings, two_tower.video_ids, k_max),
        queries,
        ks,
    )
    popular = baselines.popularity
    metrics |= _retrieval_scores(
        "popularity", np.tile(popular.top_k(k_max), (queries.user_ids.size, 1)), queries, ks
    )
    if with_mf and baselines.als is not None:
        recommended = baselines.als.recommend(queries.user_ids, k_max)
        metrics |= _retrieval_scores("mf", recommended, queries, ks)
    metrics["retrieval.test_users"] = float(queries.user_ids.size)
    return metrics


@dataclass(frozen=True)
class _Pairs:
    """(user row, item) pairs sorted by row, so a batch of rows is one contiguous slice."""

    user: np.ndarray
    item: np.ndarray

    @classmethod
    def of(cls, user: np.ndarray, item: np.ndarray) -> _Pairs:
        order = np.argsort(user, kind="stable")
        return cls(user[order].astype(np.int64), item[order].astype(np.int64))

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(self.user, [start, stop])
        return self.user[lo:hi] - start, self.item[lo:hi]


def _ranked_lists(
    recommend: Callable[[np.ndarray, int], np.ndarray],
    n_users: int,
    k: int,
    seen: _Pairs | None,
    batch: int = EVAL_BATCH,
) -> np.ndarray:
    """``[n_users, k]`` lists from ``recommend(rows, n)``; with ``seen``, history removed."""
    parts = [np.zeros((0, k), np.int64)]
    for start in range(0, n_users, batch):
        rows = np.arange(start, min(start + batch, n_users))
        if seen is None:
            ranked = recommend(rows, k)
            parts.append(exclude_seen(ranked, np.zeros(0, np.int64), np.zeros(0, np.int64), k))
            continue
        user, item = seen.rows(start, rows[-1] + 1)
        extra = int(np.bincount(user).max(initial=0)) if user.size else 0
        parts.append(exclude_seen(recommend(rows, k + extra), user, item, k))
    return np.concatenate(parts)


def evaluate_top_k(
    two_tower: TwoTowerResult,
    baselines: Baselines,
    history_df: pl.DataFrame,
    test_df: pl.DataFrame,
    filter_seen: bool = True,
    ks: tuple[int, ...] = EVAL_KS,
) -> Evaluation:
    """``eval.{two_tower,popularity,als}.{recall,ndcg}@K`` over each test user's clicks.

    ``filter_seen`` (the filtered protocol): every (user, video) click in ``history_df`` is
    removed from that user's ranked list and from their relevant test clicks; a user left
    with no relevant click is not averaged.
    """
    queries = retrieval_queries(test_df)
    rel_user, rel_item = queries.relevant_user, queries.relevant_item
    seen: _Pairs | None = None
    if filter_seen:
        table = f"{RETRIEVAL_TABLE} (history)"
        past_users = int_vector(history_df, "user_id", table)
        past_items = int_vector(history_df, "video_id", table)
        tested = np.isin(past_users, queries.user_ids)  # user_ids is sorted
        seen = _Pairs.of(np.searchsorted(queries.user_ids, past_users[tested]), past_items[tested])
        span = int(max(rel_item.max(initial=0), seen.item.max(initial=0))) + 1
        old = np.isin(rel_user.astype(np.int64) * span + rel_item, seen.user * span + seen.item)
        rel_user, rel_item = rel_user[~old], rel_item[~old]

    emb = user_embeddings(two_tower.user_tower, queries.user_x, queries.history)
    popular = baselines.popularity
    recommenders: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        "two_tower": lambda rows, n: top_k_by_inner_product(
            emb[rows], two_tower.item_embeddings, two_tower.video_ids, n
        ),
        "popularity": lambda rows, n: np.tile(popular.top_k(n), (rows.size, 1)),
    }
    if baselines.als is not None:
        als = baselines.als
        recommenders["als"] = lambda rows, n: als.recommend(queries.user_ids[rows], n)

    out = Evaluation()
    k_max = max(ks)
    n_users = queries.user_ids.size
    for name, recommend in recommenders.items():
        lists = _ranked_lists(recommend, n_users, k_max, seen)
        hits, n_relevant = hit_matrix(lists, rel_user, rel_item)
        keys = [(eval_key(name, m, k), m, k) for k in ks for m in ("recall", "ndcg")]
        if not (n_relevant > 0).any():
            reason = (
                "no test user has a test click outside their training history"
                if filter_seen
                else "no test clicks"
            )
            out.undefined.update({key: reason for key, _, _ in keys})
            continue
        for key, metric, k in keys:
            fn = recall_at_k if metric == "recall" else ndcg_at_k
            out.values[key] = fn(hits, n_relevant, k)
    out.values["eval.test_users"] = float(np.unique(rel_user).size)
    return out


def _slate_reason(clicks: np.ndarray, mixed: np.ndarray) -> str | None:
    """Why click-gain ranking metrics say nothing on these slates, or None when they do."""
    if not clicks.size:
        return "no test impressions"
    if clicks.all():
        return "every test impression is a click (no negatives): any order scores the same"
    if not clicks.any():
        return "no test impression is a click: any order scores the same"
    if not mixed.any():
        return "no test request has both a click and a non-click: any order scores the same"
    return None


def evaluate_slates(
    serving: RankerServing,
    history_df: pl.DataFrame,
    test_df: pl.DataFrame,
    head_weights: tuple[float, ...],
    ks: tuple[int, ...] = EVAL_KS,
) -> Evaluation:
    """``eval.{ranker,slate_popularity}.{ndcg,recall}@K`` over each test request's slate.

    Gain = click. Only requests holding both a click and a non-click are averaged: an
    all-click or no-click slate scores the same under any order and would flatter both.
    NDCG@K needs K ≤ the longest slate and recall@K K < it (else any order finds them all).
    """
    if len(head_weights) != len(RANKER_HEADS):
        raise InputError(f"head_weights has {len(head_weights)} values, heads are {RANKER_HEADS}")
    table = f"{RANKER_TABLE} (test)"
    require_columns(test_df, ("request_id", "video_id"), table)
    data = ranker_data(test_df, table)
    clicks = data.labels[:, RANKER_HEADS.index("p_click")].astype(bool)
    request = test_df["request_id"].to_numpy()
    codes = np.unique(request, return_inverse=True)[1].ravel()
    size = np.bincount(codes, minlength=1)
    positives = np.bincount(codes, weights=clicks, minlength=1)
    mixed = ((positives > 0) & (positives < size))[codes]
    keys = [(m, k) for k in ks for m in ("recall", "ndcg")]
    out = Evaluation()
    reason = _slate_reason(clicks, mixed)
    if reason is not None:
        for model in SLATE_MODELS:
            out.undefined.update({eval_key(model, m, k): reason for m, k in keys})
        return out

    probs = predict(serving, data.x[mixed]).astype(np.float64)
    history_table = f"{RANKER_TABLE} (history)"
    popular = fit_popularity(
        int_vector(history_df, "video_id", history_table),
        weights=int_vector(history_df, "click", history_table),
    )
    scores = {
        "ranker": probs @ np.asarray(head_weights, dtype=np.float64),
        "slate_popularity": popular.score(int_vector(test_df, "video_id", table)[mixed]),
    }
    longest = int(size[np.unique(codes[mixed])].max())
    group, gain = request[mixed], clicks[mixed]
    for model, score in scores.items():
        for metric, k in keys:
            key = eval_key(model, metric, k)
            if metric == "ndcg" and k > longest:
                out.undefined[key] = f"the longest test slate holds {longest} items, fewer than {k}"
            elif metric == "recall" and k >= longest:
                out.undefined[key] = (
                    f"every test slate fits in the top {k}: recall is 1 for any order"
                )
            elif metric == "ndcg":
                out.values[key] = grouped_ndcg_at_k(group, score, gain, k)
            else:
                out.values[key] = grouped_recall_at_k(group, score, gain, k)
    out.values["eval.test_requests"] = float(np.unique(group).size)
    return out


def evaluate_ranking(
    serving: RankerServing,
    history_df: pl.DataFrame,
    test_df: pl.DataFrame,
    head_weights: tuple[float, ...],
    k: int = RANKING_K,
) -> dict[str, float]:
    """Ranker vs popularity (train clicks in ``history_df``) on the test day's requests."""
    if len(head_weights) != len(RANKER_HEADS):
        raise InputError(f"head_weights has {len(head_weights)} values, heads are {RANKER_HEADS}")
    table = f"{RANKER_TABLE} (test)"
    require_columns(test_df, ("request_id", "video_id", "watch_ms"), table)
    data = ranker_data(test_df, table)
    probs = predict(serving, data.x).astype(np.float64)
    history_table = f"{RANKER_TABLE} (history)"
    popular = fit_popularity(
        int_vector(history_df, "video_id", history_table),
        weights=int_vector(history_df, "click", history_table),
    )
    popularity = popular.score(int_vector(test_df, "video_id", table))

    metrics: dict[str, float] = {}
    for h, head in enumerate(RANKER_HEADS):
        metrics[f"ranking.auc.{head}"] = auc(probs[:, h], data.labels[:, h])
        metrics[f"ranking.logloss.{head}"] = log_loss(probs[:, h], data.labels[:, h])
        metrics[f"ranking.popularity_auc.{head}"] = auc(popularity, data.labels[:, h])

    request = test_df["request_id"].to_numpy()
    watch = int_vector(test_df, "watch_ms", table).astype(np.float64)
    clicks = data.labels[:, RANKER_HEADS.index("p_click")]
    combined = probs @ np.asarray(head_weights, dtype=np.float64)
    for prefix, scores in (("", combined), ("popularity_", popularity)):
        metrics[f"ranking.{prefix}ndcg@{k}"] = grouped_ndcg_at_k(request, scores, clicks, k)
        metrics[f"ranking.{prefix}watch_ndcg@{k}"] = grouped_ndcg_at_k(request, scores, watch, k)
        metrics[f"ranking.{prefix}watch_time@{WATCH_K}"] = grouped_top_k_mean(
            request, scores, watch, WATCH_K
        )
    metrics["ranking.test_requests"] = float(np.unique(request).size)
    return metrics
