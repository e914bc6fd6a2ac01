"""`vidrec build`: trained models → serving artefacts, each checked before it is written.

Reads ``DIR/models`` (weights + the held-out sample saved by training) and writes the FAISS
index with its precomputed item-item neighbour lists, the ONNX models (user tower, ranker FP32
and INT8) and the Triton model_repository. Every artefact is verified against its source the
moment it is made (ONNX vs torch, index and lists vs exact search, INT8 vs FP32), and those
checks become manifest metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidrec.config import Config
from vidrec.errors import InputError
from vidrec.models import load_models
from vidrec.models.two_tower import user_embeddings
from vidrec.ranking.export import export_ranker_onnx, export_user_tower_onnx, verify_onnx
from vidrec.ranking.model_repository import write_model_repository
from vidrec.ranking.quantize import compare_int8, quantize_ranker
from vidrec.retrieval import (
    AnnIndex,
    NeighbourLists,
    build_neighbour_lists,
    exact_index,
    make_index,
    recall_at_k,
)
from vidrec.retrieval.neighbours import neighbours_from_search
from vidrec.schema import RANKER_HEADS

EVAL_SAMPLE = "eval_sample.npz"
INDEX_DIR = "index"  # the FAISS index and its neighbour lists
NEIGHBOUR_CHECK_ITEMS = 2000  # items whose lists are compared with exact search
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class EvalSample:
    """Held-out test-day inputs kept with the weights, so `build` needs no event log."""

    ranker_x: np.ndarray  # float32 [N, D]
    ranker_labels: np.ndarray  # float32 [N, 3]
    user_x: np.ndarray  # float32 [Q, U]
    history: np.ndarray  # int64 [Q, H]

    def save(self, models_dir: Path) -> None:
        np.savez_compressed(models_dir / EVAL_SAMPLE, **self.__dict__)

    @classmethod
    def load(cls, models_dir: Path) -> EvalSample:
        path = models_dir / EVAL_SAMPLE
        if not path.exists():
            raise InputError(f"{path}: missing; re-run `vidrec train` to produce it")
        with np.load(path) as z:
            return cls(**{k: z[k] for k in ("ranker_x", "ranker_labels", "user_x", "history")})


def neighbour_recall(
    lists: NeighbourLists, exact: AnnIndex, embeddings: np.ndarray, n: int = NEIGHBOUR_CHECK_ITEMS
) -> float:
    """Mean share of each item's exact top ``k`` neighbours that its list holds (a seeded
    sample of ``n`` items; ``embeddings`` rows are ``exact.video_ids``)."""
    rows = np.random.default_rng(0).permutation(exact.video_ids.size)[:n]
    owners = exact.video_ids[rows]
    truth, _ = neighbours_from_search(owners, *exact.search(embeddings[rows], lists.k + 1), lists.k)
    got, _, _, _ = lists.gather(owners)
    hits = (got[:, :, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)
    return float(np.mean(hits.any(axis=2).sum(axis=1) / np.maximum((truth >= 0).sum(axis=1), 1)))


class ArtefactCheckFailed(RuntimeError):
    """An exported artefact does not reproduce its source model: a bug, never exported."""


def build_artefacts(root: Path, cfg: Config, progress: bool = True) -> dict[str, float]:
    """Write index/, models/*.onnx and model_repository/ under ``root``; return check metrics."""
    models_dir = root / "models"
    bundle = load_models(models_dir)
    sample = EvalSample.load(models_dir)
    metrics: dict[str, float] = {}

    # Retrieval: ANN index over item embeddings, judged against exact search on real queries.
    tt = bundle.two_tower
    index = make_index(tt.item_embeddings, tt.video_ids, progress=progress)
    index.save(root / INDEX_DIR)
    queries = user_embeddings(tt.model.user_tower, sample.user_x, sample.history)
    k = min(500, len(tt.video_ids))
    exact = exact_index(tt.item_embeddings, tt.video_ids)
    metrics["index.recall@500"] = recall_at_k(index, exact, queries, k=k)
    metrics["index.items"] = float(len(tt.video_ids))

    # Item-item lists: what serving would search per request, searched once here.
    n_k = min(cfg.serving.neighbours_k, len(tt.video_ids) - 1)
    start = time.perf_counter()
    lists = build_neighbour_lists(index, tt.item_embeddings, tt.video_ids, n_k, progress=progress)
    metrics["neighbours.build_s"] = time.perf_counter() - start
    metrics["neighbours.bytes"] = float(lists.save(root / INDEX_DIR))
    metrics["neighbours.k"] = float(n_k)
    metrics["neighbours.recall_vs_exact"] = neighbour_recall(lists, exact, tt.item_embeddings)

    # ONNX: user tower and ranker, each verified against torch before anything uses them.
    user_onnx = export_user_tower_onnx(
        tt.model.user_tower,
        sample.user_x.shape[1],
        sample.history.shape[1],
        models_dir / "user_tower.onnx",
    )
    metrics["export.user_tower_max_abs_diff"] = verify_onnx(
        tt.model.user_tower, user_onnx, [sample.user_x[:256], sample.history[:256]]
    )
    serving = bundle.ranker.serving
    ranker_onnx = export_ranker_onnx(serving, sample.ranker_x.shape[1], models_dir / "ranker.onnx")
    metrics["export.ranker_max_abs_diff"] = verify_onnx(serving, ranker_onnx, [sample.ranker_x])
    for key in ("export.user_tower_max_abs_diff", "export.ranker_max_abs_diff"):
        if metrics[key] > ONNX_TOLERANCE:
            raise ArtefactCheckFailed(f"{key}={metrics[key]:.2e} exceeds {ONNX_TOLERANCE}")

    # INT8 variant: AUC change and CPU speed-up measured in this same run.
    int8 = quantize_ranker(ranker_onnx, models_dir / "ranker.int8.onnx", sample.ranker_x[:2048])
    report = compare_int8(ranker_onnx, int8, sample.ranker_x, sample.ranker_labels)
    for head in RANKER_HEADS:
        metrics[f"ranking.int8_auc_delta.{head}"] = report.auc_delta[head]
    metrics["ranking.int8_speedup"] = float(report.speedup)
    metrics["ranking.int8_fp32_ms@500"] = float(report.fp32_ms)
    metrics["ranking.int8_int8_ms@500"] = float(report.int8_ms)

    write_model_repository(
        root / "model_repository", ranker_onnx, cfg.ranking, input_dim=sample.ranker_x.shape[1]
    )
    return metrics
