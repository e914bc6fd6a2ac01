"""Two-tower retrieval, MMoE ranker, baselines, calibration, offline evaluation, quality gate."""

from vidrec.models.baselines import (
    MatrixFactorization,
    Popularity,
    fit_matrix_factorization,
    fit_popularity,
)
from vidrec.models.calibration import (
    IsotonicMap,
    PlattParams,
    calibration_report,
    expected_calibration_error,
    fit_isotonic,
    fit_platt_heads,
    reliability,
)
from vidrec.models.evaluate import (
    EVAL_KS,
    EVAL_MODELS,
    RETRIEVAL_KS,
    Evaluation,
    evaluate_ranking,
    evaluate_retrieval,
    evaluate_slates,
    evaluate_top_k,
)
from vidrec.models.gate import (
    GateResult,
    metrics_from_manifest,
    quality_gate,
    undefined_from_manifest,
)
from vidrec.models.metrics import split_by_day
from vidrec.models.mmoe import MMoE, RankerResult, RankerServing, train_ranker
from vidrec.models.params import RankerParams, TwoTowerParams
from vidrec.models.persist import ModelBundle, load_models, save_models
from vidrec.models.run import TrainedModels, train_and_evaluate
from vidrec.models.splits import SplitSpec, parse_split, split_examples
from vidrec.models.two_tower import TwoTower, TwoTowerResult, UserTower, train_two_tower

__all__ = [
    "EVAL_KS",
    "EVAL_MODELS",
    "RETRIEVAL_KS",
    "Evaluation",
    "GateResult",
    "IsotonicMap",
    "MMoE",
    "MatrixFactorization",
    "ModelBundle",
    "PlattParams",
    "Popularity",
    "RankerParams",
    "RankerResult",
    "RankerServing",
    "SplitSpec",
    "TrainedModels",
    "TwoTower",
    "TwoTowerParams",
    "TwoTowerResult",
    "UserTower",
    "calibration_report",
    "evaluate_ranking",
    "evaluate_retrieval",
    "evaluate_slates",
    "evaluate_top_k",
    "expected_calibration_error",
    "fit_isotonic",
    "fit_matrix_factorization",
    "fit_platt_heads",
    "fit_popularity",
    "load_models",
    "metrics_from_manifest",
    "parse_split",
    "quality_gate",
    "reliability",
    "save_models",
    "split_by_day",
    "split_examples",
    "train_and_evaluate",
    "train_ranker",
    "train_two_tower",
    "undefined_from_manifest",
]
