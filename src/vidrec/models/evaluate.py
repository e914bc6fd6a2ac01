"""Offline evaluation on the test day, each model next to its baselines, as one flat dict.

Keys are stable (the manifest, the report and the quality gate read them):
``retrieval.{recall,ndcg}@K``, ``retrieval.{popularity,mf}_{recall,ndcg}@K`` for K in
:data:`RETRIEVAL_KS`; ``ranking.{auc,logloss}.<head>``, ``ranking.popularity_auc.<head>``,
``ranking.ndcg@10`` / ``ranking.popularity_ndcg@10`` (gain = click),
``ranking.watch_ndcg@10`` / ``ranking.popularity_watch_ndcg@10`` (gain = watch_ms),
``ranking.watch_time@3`` / ``ranking.popularity_watch_time@3`` (mean watch_ms of the top 3: a
slate holds about 10 items, so the top 10 would be the whole slate whatever the order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from vidrec.config import TrainConfig
from vidrec.errors import InputError
from vidrec.models.baselines import fit_matrix_factorization, fit_popularity
from vidrec.models.calibration import log_loss
from vidrec.models.frames import float_matrix, int_matrix, int_vector, require_columns
from vidrec.models.metrics import (
    auc,
    grouped_ndcg_at_k,
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
) -> dict[str, float]:
    """Two-tower vs popularity vs MF; baselines are fitted on ``history_df`` (pre-test clicks)."""
    queries = retrieval_queries(test_df)
    k_max = max(ks)
    emb = user_embeddings(two_tower.user_tower, queries.user_x, queries.history)
    metrics = _retrieval_scores(
        "",
        top_k_by_inner_product(emb, two_tower.item_embeddings, two_tower.video_ids, k_max),
        queries,
        ks,
    )
    table = f"{RETRIEVAL_TABLE} (history)"
    past_videos = int_vector(history_df, "video_id", table)
    past_days = int_vector(history_df, "day", table) if popularity_half_life_days else None
    popular = fit_popularity(past_videos, days=past_days, half_life_days=popularity_half_life_days)
    metrics |= _retrieval_scores(
        "popularity", np.tile(popular.top_k(k_max), (queries.user_ids.size, 1)), queries, ks
    )
    if with_mf:
        mf = fit_matrix_factorization(
            int_vector(history_df, "user_id", table),
            past_videos,
            threads=cfg.threads,
            seed=cfg.seed,
        )
        metrics |= _retrieval_scores("mf", mf.recommend(queries.user_ids, k_max), queries, ks)
    metrics["retrieval.test_users"] = float(queries.user_ids.size)
    return metrics


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
