"""Two-tower model: logQ-corrected loss, id masking, planted-signal recall, determinism."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from tests.unit.models_fixtures import make_world, retrieval_examples
from vidrec.config import TrainConfig
from vidrec.models.evaluate import evaluate_retrieval
from vidrec.models.metrics import split_by_day
from vidrec.models.params import TwoTowerParams
from vidrec.models.two_tower import (
    TwoTowerResult,
    lookup_rows,
    sampled_softmax_loss,
    sampling_log_q,
    train_two_tower,
    user_embeddings,
)

torch.set_num_threads(1)
CFG = TrainConfig(threads=1, seed=3, embedding_dim=16)
PARAMS = TwoTowerParams(epochs=4, batch_size=256, hidden_dim=64)


@pytest.fixture(scope="module")
def world_tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    world = make_world(seed=11)
    examples = retrieval_examples(world)
    train, valid, test = split_by_day(examples)
    return world.videos, pl.concat([train, valid]), test


@pytest.fixture(scope="module")
def trained(world_tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> TwoTowerResult:
    videos, history, _ = world_tables
    return train_two_tower(history, videos, CFG, progress=False, params=PARAMS)


def test_loss_matches_hand_computation_with_logq_correction() -> None:
    users = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    items = torch.tensor([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])
    log_q = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    temperature = 0.5
    got = sampled_softmax_loss(users, items, log_q, torch.tensor([0, 1, 2]), temperature)

    expected = 0.0
    for i in range(3):
        logits = [
            float(users[i] @ items[j]) / temperature - math.log([0.5, 0.3, 0.2][j])
            for j in range(3)
        ]
        expected += -logits[i] + math.log(sum(math.exp(z) for z in logits))
    assert float(got) == pytest.approx(expected / 3, rel=1e-6)

    uncorrected = sampled_softmax_loss(users, items, torch.zeros(3), torch.tensor([0, 1, 2]), 0.5)
    assert abs(float(uncorrected) - float(got)) > 1e-3


def test_loss_does_not_treat_the_same_item_in_another_row_as_a_negative() -> None:
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    items = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # rows 0 and 1: same item
    rows = torch.tensor([4, 4, 9])
    got = sampled_softmax_loss(users, items, torch.zeros(3), rows, 1.0)

    # Row 0 competes only with column 2, row 1 only with column 2, row 2 with all three.
    def ce(logits: list[float], target: int) -> float:
        return -logits[target] + math.log(sum(math.exp(z) for z in logits))

    expected = (ce([1.0, 0.0], 0) + ce([0.0, 1.0], 0) + ce([0.6, 0.6, 0.8], 2)) / 3
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_sampling_log_q_is_training_frequency() -> None:
    log_q = sampling_log_q(np.array([0, 0, 0, 1]), n_items=3)
    np.testing.assert_allclose(np.exp(log_q[:2]), [0.75, 0.25], rtol=1e-6)
    assert np.isfinite(log_q[2])  # never-clicked items stay finite


def test_lookup_masks_padding_unknown_and_out_of_range_ids() -> None:
    lookup = torch.tensor([-1, 0, -1, 1])  # ids 1 and 3 are known
    rows, known = lookup_rows(lookup, torch.tensor([[3, 1, -1, 2, 99]]))
    assert known.tolist() == [[1.0, 1.0, 0.0, 0.0, 0.0]]
    assert rows[0, :2].tolist() == [1, 0]


def test_user_tower_ignores_masked_history(trained: TwoTowerResult) -> None:
    tower = trained.user_tower
    known = int(trained.video_ids[3])
    user_x = torch.zeros(2, tower.user_mean.shape[0])
    history = torch.tensor([[known, -1, -1], [known, 10**9, known + 1]])  # known+1 is a gap id
    with torch.no_grad():
        out = tower(user_x, history)
    torch.testing.assert_close(out[0], out[1])
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_item_embeddings_are_aligned_normalised_and_cover_unseen_uploads(
    trained: TwoTowerResult, world_tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
) -> None:
    videos = world_tables[0]
    assert trained.item_embeddings.shape == (len(videos), CFG.embedding_dim)
    np.testing.assert_array_equal(trained.video_ids, np.sort(videos["video_id"].to_numpy()))
    np.testing.assert_allclose(np.linalg.norm(trained.item_embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        trained.model.embed_videos(videos.sort("video_id")), trained.item_embeddings, atol=1e-6
    )
    upload = videos.head(1).with_columns(
        pl.lit(10**7).alias("video_id"), pl.lit(-5).alias("creator_id")
    )
    fresh = trained.model.embed_videos(upload)
    assert fresh.shape == (1, CFG.embedding_dim) and np.isfinite(fresh).all()


def test_two_tower_beats_popularity_on_planted_signal(
    trained: TwoTowerResult, world_tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
) -> None:
    _, history, test = world_tables
    metrics = evaluate_retrieval(trained, history, test, CFG, ks=(50, 100), with_mf=False)
    assert trained.losses[-1] < trained.losses[0]
    assert metrics["retrieval.recall@100"] > 1.05 * metrics["retrieval.popularity_recall@100"]
    assert metrics["retrieval.ndcg@50"] > metrics["retrieval.popularity_ndcg@50"]


def test_training_is_deterministic_for_a_seed(
    world_tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    videos, history, test = world_tables
    small = history.head(1500)
    params = TwoTowerParams(epochs=1, batch_size=256, hidden_dim=32)
    a = train_two_tower(small, videos, CFG, progress=False, params=params)
    b = train_two_tower(small, videos, CFG, progress=False, params=params)
    c = train_two_tower(
        small, videos, TrainConfig(threads=1, seed=4, embedding_dim=16), False, params
    )
    np.testing.assert_array_equal(a.item_embeddings, b.item_embeddings)
    assert a.losses == b.losses
    assert not np.array_equal(a.item_embeddings, c.item_embeddings)
    ux, hist = test["user_x"].to_numpy(), test["history"].to_numpy()
    np.testing.assert_array_equal(
        user_embeddings(a.user_tower, ux, hist), user_embeddings(b.user_tower, ux, hist)
    )


def test_bad_input_names_the_table_and_column(
    world_tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    videos, history, _ = world_tables
    with pytest.raises(ValueError, match=r"retrieval examples: missing column 'history'"):
        train_two_tower(history.drop("history"), videos, CFG, progress=False, params=PARAMS)
    stray = history.with_columns(pl.lit(3, dtype=pl.Int64).alias("video_id"))  # 3 not in catalog
    with pytest.raises(ValueError, match=r"column 'video_id' has ids missing from videos"):
        train_two_tower(stray, videos, CFG, progress=False, params=PARAMS)
    bad_cats = videos.with_columns(pl.lit([77], dtype=pl.List(pl.Int64)).alias("category_ids"))
    with pytest.raises(ValueError, match=r"videos: column 'category_ids'"):
        train_two_tower(history, bad_cats, CFG, progress=False, params=PARAMS)
