"""`vidrec bench recall` on the test artefacts: every source scored against the held-out day."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vidrec.models.evaluate import RetrievalQueries
from vidrec_dev.bench.recall import RESULTS_FILE, _recalls, run

SOURCES = ("two_tower", "item_item (search)", "item_item (lists)", "trending", "fresh",
           "same_creator", "all (union, lists)")  # fmt: skip


def test_recall_counts_each_users_clicks_once() -> None:
    q = RetrievalQueries(
        user_ids=np.array([1, 2]), user_x=np.zeros((2, 1), np.float32),
        history=np.zeros((2, 1), np.int64), relevant_user=np.array([0, 0, 1, 1]),
        relevant_item=np.array([10, 11, 20, 20]),
    )  # fmt: skip
    r = _recalls(q, [[10, 99], [5, 6, 20]], k=2)
    assert r["recall@k"] == 0.25  # user 0: 1 of 2 in its top 2; user 1: its one click at 3rd
    assert r["recall@50"] == 0.75 and r["mean_candidates"] == 2.5


def test_bench_recall_on_the_test_artefacts(artefacts: Path, tmp_path: Path) -> None:
    result = run(artefacts, tmp_path, progress=False)
    written = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert written["sources"]["two_tower"] == result["sources"]["two_tower"]
    sources = result["sources"]
    assert tuple(sources) == SOURCES
    for name, s in sources.items():
        assert 0.0 <= s["recall@k"] <= 1.0, name
    # The index's top 50 of the pipeline's own test queries: as the manifest measured it
    # by exact search (the same queries, first click of each test-day user).
    metrics = json.loads((artefacts / "manifest.json").read_text())["metrics"]
    assert math.isclose(sources["two_tower"]["recall@50"], metrics["retrieval.recall@50"],
                        abs_tol=0.03)  # fmt: skip
    assert result["item_item_overlap_lists_vs_search"] >= 0.9
    lists, search = sources["item_item (lists)"], sources["item_item (search)"]
    assert abs(lists["recall@k"] - search["recall@k"]) <= 0.01
    assert sources["all (union, lists)"]["recall@k"] >= sources["two_tower"]["recall@k"]
    assert 0 < result["users_with_seeds"] <= result["test_users"]
