"""MMoE ranker: learns the planted click signal, position is neutralised at serving."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from tests.unit.models_fixtures import make_world, ranker_examples
from vidrec.config import TrainConfig
from vidrec.models.calibration import log_loss
from vidrec.models.metrics import auc, split_by_day
from vidrec.models.mmoe import RankerResult, predict, ranker_data, train_ranker
from vidrec.models.params import RankerParams
from vidrec.schema import RANKER_HEADS

torch.set_num_threads(1)
CFG = TrainConfig(threads=1, seed=5)
PARAMS = RankerParams(epochs=3, batch_size=512, expert_dim=32, tower_dim=16)


@pytest.fixture(scope="module")
def splits() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return split_by_day(ranker_examples(make_world(seed=21)))


@pytest.fixture(scope="module")
def trained(splits: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> RankerResult:
    train, valid, _ = splits
    return train_ranker(train, valid, CFG, progress=False, params=PARAMS)


def test_learns_planted_signal_on_every_head(
    trained: RankerResult, splits: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
) -> None:
    test = ranker_data(splits[2])
    probs = predict(trained.serving, test.x)
    assert probs.shape == (len(splits[2]), len(RANKER_HEADS))
    assert ((probs > 0) & (probs < 1)).all()
    for h in range(len(RANKER_HEADS)):
        assert auc(probs[:, h], test.labels[:, h]) > 0.7
    assert trained.train_loss[-1] < trained.train_loss[0]
    assert len(trained.valid_loss) == PARAMS.epochs
    assert trained.valid_loss[trained.best_epoch] == min(trained.valid_loss)


def test_training_logits_depend_on_position_serving_does_not(
    trained: RankerResult, splits: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
) -> None:
    data = ranker_data(splits[2])
    x = data.x[:200]
    top = predict(trained.model, x, np.zeros(200, np.int64))
    low = predict(trained.model, x, np.full(200, 15, np.int64))
    click = RANKER_HEADS.index("p_click")
    like = RANKER_HEADS.index("p_like")
    # The planted bias lowers clicks further down the list; the tower learned that direction.
    assert (top[:, click] - low[:, click]).min() > 0.3
    np.testing.assert_allclose(top[:, like], low[:, like])  # like has no position term

    # Serving is the position-free logit, calibrated: identical whatever the slot was.
    neutral = predict(trained.model, x)
    platt = trained.serving.platt
    np.testing.assert_allclose(predict(trained.serving, x), platt.apply(neutral), atol=1e-6)
    shuffled = splits[2].head(200).with_columns(pl.Series("position", np.arange(200) % 7))
    np.testing.assert_allclose(
        predict(trained.serving, ranker_data(shuffled).x), predict(trained.serving, x)
    )


def test_learned_position_bias_decreases_down_the_list(trained: RankerResult) -> None:
    bias = trained.model.position_bias.weight.detach().numpy()[:20, 0]
    assert np.corrcoef(np.arange(20), bias)[0, 1] < -0.8


def test_platt_on_validation_lowers_test_log_loss(
    trained: RankerResult, splits: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]
) -> None:
    test = ranker_data(splits[2])
    raw = 1.0 / (1.0 + np.exp(-predict(trained.model, test.x)))
    calibrated = predict(trained.serving, test.x)
    click = RANKER_HEADS.index("p_click")
    # Serving drops the position bias, so raw scores are off the observed click rate.
    assert log_loss(calibrated[:, click], test.labels[:, click]) < log_loss(
        raw[:, click], test.labels[:, click]
    )


def test_training_is_deterministic_for_a_seed(
    splits: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    train, valid, test = splits
    params = RankerParams(epochs=1, batch_size=1024, expert_dim=16, tower_dim=8)
    x = ranker_data(test).x
    a = train_ranker(train, valid, CFG, progress=False, params=params)
    b = train_ranker(train, valid, CFG, progress=False, params=params)
    c = train_ranker(train, valid, TrainConfig(threads=1, seed=6), progress=False, params=params)
    np.testing.assert_array_equal(predict(a.serving, x), predict(b.serving, x))
    assert not np.array_equal(predict(a.serving, x), predict(c.serving, x))


def test_bad_input_names_the_table_and_column(
    splits: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    train, valid, _ = splits
    with pytest.raises(ValueError, match=r"ranker examples \(train\): missing column 'like'"):
        train_ranker(train.drop("like"), valid, CFG, progress=False, params=PARAMS)
    bad = valid.with_columns(pl.lit(2, dtype=pl.Int8).alias("click"))
    with pytest.raises(ValueError, match=r"ranker examples \(valid\): column 'click' must be 0/1"):
        train_ranker(train, bad, CFG, progress=False, params=PARAMS)
    narrow = valid.with_columns(
        pl.Series("x", ranker_data(valid).x[:, :3], dtype=pl.Array(pl.Float32, 3))
    )
    with pytest.raises(ValueError, match=r"column 'x' has width 3"):
        train_ranker(train, narrow, CFG, progress=False, params=PARAMS)
