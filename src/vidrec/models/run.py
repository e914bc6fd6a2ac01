"""Train both models on the time split and evaluate them against the baselines, in one call.

Split: the last day is test, the day before validation. The two-tower model and every
baseline learn from all days before the test day; the ranker trains on the days before
validation and uses the validation day to pick its epoch and fit Platt scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from vidrec.config import Config
from vidrec.models.calibration import calibration_report
from vidrec.models.evaluate import evaluate_ranking, evaluate_retrieval
from vidrec.models.metrics import split_by_day
from vidrec.models.mmoe import RANKER_TABLE, RankerResult, predict, ranker_data, train_ranker
from vidrec.models.params import RankerParams, TwoTowerParams
from vidrec.models.two_tower import RETRIEVAL_TABLE, TwoTowerResult, train_two_tower
from vidrec.schema import RANKER_HEADS


@dataclass
class TrainedModels:
    two_tower: TwoTowerResult
    ranker: RankerResult
    metrics: dict[str, float]  # stable keys, see vidrec.models.evaluate


def train_and_evaluate(
    ranker_examples: pl.DataFrame,
    retrieval_examples: pl.DataFrame,
    videos: pl.DataFrame,
    cfg: Config,
    progress: bool = True,
    two_tower_params: TwoTowerParams | None = None,
    ranker_params: RankerParams | None = None,
    with_mf: bool = True,
) -> TrainedModels:
    r_train, r_valid, r_test = split_by_day(retrieval_examples, RETRIEVAL_TABLE)
    k_train, k_valid, k_test = split_by_day(ranker_examples, RANKER_TABLE)
    r_history = pl.concat([r_train, r_valid])
    k_history = pl.concat([k_train, k_valid])

    two_tower = train_two_tower(r_history, videos, cfg.train, progress, two_tower_params)
    ranker = train_ranker(k_train, k_valid, cfg.train, progress, ranker_params)

    metrics = evaluate_retrieval(two_tower, r_history, r_test, cfg.train, with_mf=with_mf)
    metrics |= evaluate_ranking(ranker.serving, k_history, k_test, cfg.ranking.head_weights)
    valid, test = ranker_data(k_valid), ranker_data(k_test)
    _, calibration = calibration_report(
        predict(ranker.model, valid.x),
        valid.labels,
        predict(ranker.model, test.x),
        test.labels,
        RANKER_HEADS,
    )
    metrics |= calibration
    return TrainedModels(two_tower=two_tower, ranker=ranker, metrics=metrics)
