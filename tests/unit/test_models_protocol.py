"""The filtered and unfiltered protocols and the slate metrics, against hand computations.

Stub models with known scores stand in for trained ones, so every number below is worked out
by hand in the comments.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import cast

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from vidrec.models.baselines import fit_popularity
from vidrec.models.evaluate import Baselines, evaluate_slates, evaluate_top_k
from vidrec.models.mmoe import RankerServing
from vidrec.models.two_tower import TwoTowerResult

L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)


class _UserXIsTheEmbedding(nn.Module):
    def forward(self, user_x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return user_x


class _FirstThreeColumns(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :3]


def _two_tower() -> TwoTowerResult:
    # score = user_x · item: user [1, 0] ranks 10 > 20 > 30, user [-1, 0] ranks 30 > 20 > 10
    items = np.array([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    fake = SimpleNamespace(
        user_tower=_UserXIsTheEmbedding(), item_embeddings=items, video_ids=np.array([10, 20, 30])
    )
    return cast(TwoTowerResult, fake)


def _clicks(users: list[int], videos: list[int], user_x: list[list[float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": users,
            "video_id": videos,
            "ts": list(range(len(users))),
            "day": [0] * len(users),
            "user_x": pl.Series(user_x, dtype=pl.Array(pl.Float32, 2)),
            "history": pl.Series([[-1]] * len(users), dtype=pl.Array(pl.Int64, 1)),
        }
    )


HISTORY = _clicks([1, 2, 3, 3], [10, 30, 20, 20], [[0.0, 0.0]] * 4)
# user 1 clicks 20 (unseen); user 2 clicks 30 again (seen) and 10
TEST = _clicks([1, 2, 2], [20, 30, 10], [[1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
BASELINES = Baselines(popularity=fit_popularity(HISTORY["video_id"].to_numpy()), als=None)


def test_filtered_protocol_removes_history_from_lists_and_relevant_sets() -> None:
    got = evaluate_top_k(_two_tower(), BASELINES, HISTORY, TEST, filter_seen=True, ks=(1, 2, 3))
    m = got.values
    # user 1: list 20, 30 (10 seen) -> hit at 1. user 2: relevant {10}; list 20, 10 -> hit at 2
    assert m["eval.two_tower.recall@1"] == pytest.approx((1 + 0) / 2)
    assert m["eval.two_tower.ndcg@2"] == pytest.approx((1 + (1 / L3)) / 2)
    # popularity 20 (2 clicks) > 10 > 30 (tie -> smaller id): user 1 sees 20, 30; user 2 20, 10
    assert m["eval.popularity.recall@1"] == pytest.approx((1 + 0) / 2)
    assert m["eval.popularity.ndcg@3"] == pytest.approx((1 + 1 / L3) / 2)
    assert m["eval.test_users"] == 2
    assert not any(k.startswith("eval.als") for k in m) and not got.undefined


def test_unfiltered_protocol_ranks_and_counts_history_too() -> None:
    got = evaluate_top_k(_two_tower(), BASELINES, HISTORY, TEST, filter_seen=False, ks=(1, 2, 3))
    m = got.values
    # user 1: 10, 20, 30 -> 20 at rank 2; user 2: relevant {30, 10}; 30, 20, 10
    assert m["eval.two_tower.recall@1"] == pytest.approx((0 + 0.5) / 2)
    ndcg_u2 = (1 / L2) / (1 / L2 + 1 / L3)
    assert m["eval.two_tower.ndcg@2"] == pytest.approx((1 / L3 + ndcg_u2) / 2)
    assert m["eval.two_tower.ndcg@3"] == pytest.approx(
        (1 / L3 + (1 / L2 + 1 / L4) / (1 / L2 + 1 / L3)) / 2
    )


def test_every_test_click_in_history_leaves_the_filtered_metrics_undefined() -> None:
    repeat = _clicks([1], [10], [[1.0, 0.0]])
    got = evaluate_top_k(_two_tower(), BASELINES, HISTORY, repeat, filter_seen=True, ks=(10,))
    assert "eval.two_tower.recall@10" not in got.values
    assert "outside their training history" in got.undefined["eval.popularity.ndcg@10"]


def _slates(clicks: list[int], score: list[float]) -> pl.DataFrame:
    n = len(clicks)
    x = [[s, 0.0, 0.0, 0.0] for s in score]
    return pl.DataFrame(
        {
            "request_id": [i // 3 for i in range(n)],
            "video_id": [10 + i for i in range(n)],
            "position": [i % 3 for i in range(n)],
            "x": pl.Series(x, dtype=pl.Array(pl.Float32, 4)),
            "click": clicks,
            "long_view": [0] * n,
            "like": [0] * n,
        }
    )


SERVING = cast(RankerServing, _FirstThreeColumns())
WEIGHTS = (1.0, 0.0, 0.0)


def test_slates_score_only_requests_with_a_click_and_a_non_click() -> None:
    # request 0: click on the lowest-scored item; request 1: all clicks (not averaged)
    test = _slates([0, 0, 1, 1, 1, 1], [0.9, 0.5, 0.1, 0.3, 0.2, 0.1])
    history = pl.DataFrame({"video_id": [12, 12, 11], "click": [1, 1, 1]})
    got = evaluate_slates(SERVING, history, test, WEIGHTS, ks=(1, 2, 3, 10))
    m = got.values
    assert m["eval.ranker.ndcg@3"] == pytest.approx(1 / L4)
    assert m["eval.ranker.recall@2"] == 0.0
    # popularity: 12 (2 clicks) first -> the clicked item at rank 1
    assert m["eval.slate_popularity.ndcg@1"] == 1.0
    assert m["eval.test_requests"] == 1
    assert "holds 3 items" in got.undefined["eval.ranker.ndcg@10"]
    assert "recall is 1 for any order" in got.undefined["eval.ranker.recall@3"]


def test_all_click_slates_are_undefined_with_the_reason() -> None:
    test = _slates([1] * 6, [0.9, 0.5, 0.1, 0.3, 0.2, 0.1])
    history = pl.DataFrame({"video_id": [12], "click": [1]})
    got = evaluate_slates(SERVING, history, test, WEIGHTS, ks=(10,))
    assert got.values == {}
    assert "every test impression is a click" in got.undefined["eval.ranker.ndcg@10"]
    assert set(got.undefined) == {
        f"eval.{m}.{k}@10" for m in ("ranker", "slate_popularity") for k in ("recall", "ndcg")
    }
