"""Train both models on the time split and evaluate them against the baselines, in one call.

Split: ``cfg.train.eval_split`` (:mod:`vidrec.models.splits`; by default the dataset's own
``split`` column, else the last day is test and the day before validation). The two-tower
model and every baseline learn from train + valid; the ranker trains on train and uses valid
to pick its epoch and fit Platt scaling. A metric the test rows cannot support is left out of
``metrics`` and named, with its reason, in ``undefined``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from vidrec.config import Config
from vidrec.models.calibration import calibration_report
from vidrec.models.evaluate import (
    evaluate_ranking,
    evaluate_retrieval,
    evaluate_slates,
    evaluate_top_k,
    fit_baselines,
)
from vidrec.models.mmoe import RANKER_TABLE, RankerResult, predict, ranker_data, train_ranker
from vidrec.models.params import RankerParams, TwoTowerParams
from vidrec.models.splits import parse_split, split_examples
from vidrec.models.two_tower import RETRIEVAL_TABLE, TwoTowerResult, train_two_tower
from vidrec.schema import RANKER_HEADS


@dataclass
class TrainedModels:
    two_tower: TwoTowerResult
    ranker: RankerResult
    metrics: dict[str, float]  # stable keys, see vidrec.models.evaluate; finite only
    undefined: dict[str, str] = field(default_factory=dict)  # key -> why it is not a number
    evaluation: dict[str, Any] = field(default_factory=dict)  # split, protocol, row counts


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
    spec = parse_split(cfg.train.eval_split)
    r_train, r_valid, r_test = split_examples(retrieval_examples, spec, RETRIEVAL_TABLE)
    k_train, k_valid, k_test = split_examples(ranker_examples, spec, RANKER_TABLE)
    r_history = pl.concat([r_train, r_valid])
    k_history = pl.concat([k_train, k_valid])
    filter_seen = cfg.train.eval_filter_seen

    two_tower = train_two_tower(r_history, videos, cfg.train, progress, two_tower_params)
    ranker = train_ranker(k_train, k_valid, cfg.train, progress, ranker_params)

    baselines = fit_baselines(r_history, cfg.train, with_mf)
    metrics = evaluate_retrieval(
        two_tower, r_history, r_test, cfg.train, with_mf=with_mf, baselines=baselines
    )
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
    evaluation = evaluate_top_k(two_tower, baselines, r_history, r_test, filter_seen)
    evaluation |= evaluate_slates(ranker.serving, k_history, k_test, cfg.ranking.head_weights)
    undefined = _label_reasons(test.labels) | evaluation.undefined
    metrics |= evaluation.values
    for key, value in metrics.items():
        if not math.isfinite(value) and key not in undefined:
            undefined[key] = "not a number on this test set"
    return TrainedModels(
        two_tower=two_tower,
        ranker=ranker,
        metrics={k: v for k, v in metrics.items() if k not in undefined},
        undefined=dict(sorted(undefined.items())),
        evaluation={
            "split": str(spec.resolve(ranker_examples)),
            "protocol": "filtered" if filter_seen else "unfiltered",
            "rows": {
                "retrieval": [r_train.height, r_valid.height, r_test.height],
                "ranker": [k_train.height, k_valid.height, k_test.height],
            },
        },
    )


def _label_reasons(labels: np.ndarray) -> dict[str, str]:
    """The legacy ``ranking.*`` keys a single-class head leaves meaningless, with why."""
    out: dict[str, str] = {}
    for h, head in enumerate(RANKER_HEADS):
        column = labels[:, h]
        if column.size and np.all(column == column[0]):
            reason = f"every test label of {head} is {int(column[0])}: needs both classes"
            out |= {f"ranking.auc.{head}": reason, f"ranking.popularity_auc.{head}": reason}
            if head == "p_click":
                out |= {"ranking.ndcg@10": reason, "ranking.popularity_ndcg@10": reason}
    return out
