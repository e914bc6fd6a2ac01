"""End to end on the planted world: train both models, evaluate, gate, save and reload."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.unit.models_fixtures import make_world, ranker_examples, retrieval_examples
from vidrec.config import Config, TrainConfig
from vidrec.models import (
    EVAL_KS,
    EVAL_MODELS,
    RETRIEVAL_KS,
    RankerParams,
    TrainedModels,
    TwoTowerParams,
    load_models,
    quality_gate,
    save_models,
    train_and_evaluate,
)
from vidrec.models.mmoe import predict
from vidrec.models.two_tower import user_embeddings
from vidrec.schema import RANKER_HEADS

torch.set_num_threads(1)
CFG = dataclasses.replace(Config(), train=TrainConfig(threads=1, seed=9, embedding_dim=16))


@pytest.fixture(scope="module")
def world_and_models() -> tuple[np.ndarray, np.ndarray, np.ndarray, TrainedModels]:
    world = make_world(seed=31)
    ranker_df, retrieval_df = ranker_examples(world), retrieval_examples(world)
    trained = train_and_evaluate(
        ranker_df,
        retrieval_df,
        world.videos,
        CFG,
        progress=False,
        two_tower_params=TwoTowerParams(epochs=4, batch_size=256, hidden_dim=64),
        ranker_params=RankerParams(epochs=3, batch_size=512, expert_dim=32, tower_dim=16),
    )
    x = ranker_df["x"].to_numpy()[:300]
    ux, hist = retrieval_df["user_x"].to_numpy()[:300], retrieval_df["history"].to_numpy()[:300]
    return x, ux, hist, trained


def test_metrics_have_every_stable_key(
    world_and_models: tuple[np.ndarray, np.ndarray, np.ndarray, TrainedModels],
) -> None:
    metrics = world_and_models[3].metrics
    expected = [
        f"retrieval.{prefix}{name}@{k}"
        for prefix in ("", "popularity_", "mf_")
        for name in ("recall", "ndcg")
        for k in RETRIEVAL_KS
    ]
    expected += [f"ranking.{m}.{h}" for m in ("auc", "logloss") for h in RANKER_HEADS]
    expected += [
        f"ranking.{prefix}{name}@10"
        for prefix in ("", "popularity_")
        for name in ("ndcg", "watch_ndcg")
    ]
    expected += ["ranking.watch_time@3", "ranking.popularity_watch_time@3"]
    expected += [
        f"eval.{model}.{name}@{k}"
        for model in EVAL_MODELS
        for name in ("recall", "ndcg")
        for k in EVAL_KS
    ]
    expected += ["eval.ranker.ndcg@10", "eval.slate_popularity.ndcg@10", "eval.ranker.recall@10"]
    missing = [key for key in expected if key not in metrics]
    assert not missing
    assert all(np.isfinite(metrics[key]) for key in expected)
    # 20-item slates: NDCG@50 is undefined (with why), never a number
    undefined = world_and_models[3].undefined
    assert (
        "eval.ranker.ndcg@50" not in metrics
        and "holds 20 items" in undefined["eval.ranker.ndcg@50"]
    )
    assert world_and_models[3].evaluation["split"] == "last-day"
    assert world_and_models[3].evaluation["protocol"] == "filtered"


def test_history_is_filtered_from_every_ranked_list(
    world_and_models: tuple[np.ndarray, np.ndarray, np.ndarray, TrainedModels],
) -> None:
    """Filtering can only help a list of a fixed length find unseen clicks: the filtered
    top-100 holds at least as many of them as the unfiltered top-100 (checked via recall)."""
    metrics = world_and_models[3].metrics
    for model in EVAL_MODELS:
        recall = [metrics[f"eval.{model}.recall@{k}"] for k in EVAL_KS]
        assert recall == sorted(recall), model  # recall never falls as K grows


def test_models_beat_popularity_and_pass_the_gate(
    world_and_models: tuple[np.ndarray, np.ndarray, np.ndarray, TrainedModels],
) -> None:
    metrics = world_and_models[3].metrics
    assert metrics["ranking.ndcg@10"] > metrics["ranking.popularity_ndcg@10"]
    assert metrics["ranking.watch_time@3"] > metrics["ranking.popularity_watch_time@3"]
    assert metrics["ranking.auc.p_click"] > 0.7
    gate = quality_gate(metrics, None, CFG.train.gate_margin)
    assert gate.passed, gate.reasons
    # Against itself as the previous model nothing is "better by 5%": the gate must refuse.
    assert not quality_gate(metrics, metrics, CFG.train.gate_margin).passed


def test_save_load_round_trip_gives_identical_outputs(
    world_and_models: tuple[np.ndarray, np.ndarray, np.ndarray, TrainedModels], tmp_path: Path
) -> None:
    x, ux, hist, trained = world_and_models
    save_models(tmp_path, trained.two_tower, trained.ranker)
    assert {p.name for p in tmp_path.iterdir()} >= {"two_tower.pt", "ranker.pt", "models.json"}
    loaded = load_models(tmp_path)

    np.testing.assert_array_equal(
        predict(loaded.ranker.serving, x), predict(trained.ranker.serving, x)
    )
    np.testing.assert_array_equal(
        user_embeddings(loaded.two_tower.user_tower, ux, hist),
        user_embeddings(trained.two_tower.user_tower, ux, hist),
    )
    np.testing.assert_array_equal(
        loaded.two_tower.model.catalog_embeddings(), trained.two_tower.item_embeddings
    )
    np.testing.assert_array_equal(loaded.two_tower.video_ids, trained.two_tower.video_ids)
    assert loaded.ranker.valid_loss == trained.ranker.valid_loss
    assert loaded.two_tower.params == trained.two_tower.params


def test_load_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"models\.json: cannot read model metadata"):
        load_models(tmp_path)


def test_serving_modules_export_to_onnx_with_a_dynamic_batch(
    world_and_models: tuple[np.ndarray, np.ndarray, np.ndarray, TrainedModels], tmp_path: Path
) -> None:
    import warnings

    import onnxruntime as ort

    x, ux, hist, trained = world_and_models
    hist = hist.copy()
    hist[0, :2] = [10**9, 4]  # beyond the id table, and an id that is not in the catalogue
    cases = [
        (trained.ranker.serving, (x,), ["x"]),
        (trained.two_tower.user_tower, (ux, hist), ["user_x", "history"]),
    ]
    for i, (module, inputs, names) in enumerate(cases):
        path = tmp_path / f"m{i}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(torch.from_numpy(a[:4]) for a in inputs),
                str(path),
                input_names=names,
                output_names=["y"],
                dynamic_axes={n: {0: "batch"} for n in [*names, "y"]},
                dynamo=False,
            )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, dict(zip(names, inputs, strict=True)))[0]
        with torch.no_grad():
            want = module(*(torch.from_numpy(a) for a in inputs)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
