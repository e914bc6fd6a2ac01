"""LocalRetrieval on a real (small) artefact directory built by the offline pipeline."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import HOUR_MS, ServingState
from vidrec.config import ServingConfig
from vidrec.contracts.artefacts import SERVING_DIR
from vidrec.features import user_spec
from vidrec.features.ranker_input import user_tower_input
from vidrec.models.persist import load_models
from vidrec.models.two_tower import user_embeddings
from vidrec.pipeline.clients import RetrievedVideo
from vidrec.pipeline.retrievers import Query

torch.set_num_threads(1)
CFG = ServingConfig(fresh_max_age_h=48.0)


@pytest.fixture(scope="module")
def retrieval(artefacts: Path) -> LocalRetrieval:
    return LocalRetrieval(ServingState.load(artefacts), CFG)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_second_load_is_fast_and_clock_is_end_of_log(
    artefacts: Path, retrieval: LocalRetrieval
) -> None:
    assert (artefacts / SERVING_DIR / "videos.parquet").is_file()
    start = time.perf_counter()
    state = ServingState.load(artefacts)
    assert time.perf_counter() - start < 2.0
    assert state.clock_ms() == state.manifest.data_window["end_ms"] + 1
    assert ServingState.load(artefacts, now_ms=123).clock_ms() == 123


def _user(state: ServingState, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    vec = rng.normal(size=user_spec(state.static_dim).dim).astype(np.float32)
    return vec, rng.choice(state.embedding_ids, size=5, replace=False).tolist()


def test_onnx_user_tower_equals_torch(retrieval: LocalRetrieval, artefacts: Path) -> None:
    state = retrieval.state
    tower = load_models(artefacts / "models").two_tower.user_tower
    for seed in range(3):
        vec, history = _user(state, seed)
        hist = np.full((1, state.history_len), -1, np.int64)
        hist[0, : len(history)] = history
        expected = user_embeddings(tower, user_tower_input(vec[None]), hist)
        got = retrieval.user_embedding(vec, history)
        assert np.abs(got - expected).max() < 1e-4


def test_two_tower_overlaps_exact_search(retrieval: LocalRetrieval) -> None:
    state, k = retrieval.state, 100
    for seed in range(3):
        vec, history = _user(state, seed)
        got = run(
            retrieval.retrieve("two_tower", Query(user_vector=vec, video_ids=tuple(history)), k)
        )
        emb = retrieval.user_embedding(vec, history)[0]
        exact = state.embedding_ids[np.argsort(-(state.item_embeddings @ emb))[:k]]
        assert len(got) == k
        assert len({v.video_id for v in got} & set(exact.tolist())) >= 0.8 * k
        assert all(a.score >= b.score for a, b in itertools.pairwise(got))


def _check_metadata(state: ServingState, items: list[RetrievedVideo]) -> None:
    cat = state.catalogue
    rows, known = cat.rows(np.array([v.video_id for v in items], dtype=np.int64))
    assert known.all()
    assert [v.creator_id for v in items] == cat.creator_id[rows].tolist()
    assert [v.upload_ts for v in items] == cat.upload_ts[rows].tolist()
    assert [v.category for v in items] == cat.category[rows].tolist()


def test_related_excludes_anchors_and_interleaves(retrieval: LocalRetrieval) -> None:
    anchors = retrieval.state.embedding_ids[[10, 20]].tolist()
    got = run(retrieval.retrieve("related", Query(video_ids=tuple(anchors)), 30))
    ids = [v.video_id for v in got]
    assert len(ids) == 30 == len(set(ids)) and not set(ids) & set(anchors)
    assert {v.anchor_video_id for v in list(got)[:2]} == set(anchors)
    _check_metadata(retrieval.state, got)
    assert (
        len(run(retrieval.retrieve("related", Query(video_ids=(-5,)), 10))) == 0
    )  # unknown anchor: nothing, no crash


def test_trending_differs_by_region(retrieval: LocalRetrieval) -> None:
    regions = sorted(retrieval.state.trending)
    assert len(regions) >= 2
    lists = {
        r: [v.video_id for v in run(retrieval.retrieve("trending", Query(region=r), 20))]
        for r in regions
    }
    assert all(len(ids) == 20 for ids in lists.values())
    assert len({tuple(ids) for ids in lists.values()}) == len(regions)
    scores = [v.score for v in run(retrieval.retrieve("trending", Query(region=regions[0]), 20))]
    assert scores == sorted(scores, reverse=True)
    assert len(run(retrieval.retrieve("trending", Query(region="atlantis"), 5))) == 0


def test_fresh_is_newest_first_within_max_age(retrieval: LocalRetrieval) -> None:
    now = retrieval.state.clock_ms()
    got = run(retrieval.retrieve("fresh", Query(now_ms=now), 50))
    ts = [v.upload_ts for v in got]
    assert len(got) > 0 and ts == sorted(ts, reverse=True)
    assert all(now - 48 * HOUR_MS <= t <= now for t in ts)
    _check_metadata(retrieval.state, got)
    # Long after the log, nothing is fresh: the newest overall, still newest first.
    late = run(retrieval.retrieve("fresh", Query(now_ms=now + 365 * 24 * HOUR_MS), 10))
    assert [v.video_id for v in late] == [v.video_id for v in list(got)[:10]]


def test_same_creator_by_popularity(retrieval: LocalRetrieval) -> None:
    cat = retrieval.state.catalogue
    creators, counts = np.unique(cat.creator_id, return_counts=True)
    creator = creators[np.argmax(counts)]
    anchor = int(cat.video_id[np.flatnonzero(cat.creator_id == creator)[0]])
    got = run(retrieval.retrieve("same_creator", Query(video_ids=(anchor,)), 10))
    assert len(got) == min(10, counts.max() - 1)
    assert all(v.creator_id == creator and v.video_id != anchor for v in got)
    assert all(v.anchor_video_id == anchor for v in got)
    pops = [v.score for v in got]
    assert pops == sorted(pops, reverse=True)


def test_by_category_and_popular(retrieval: LocalRetrieval) -> None:
    got = run(retrieval.retrieve("by_category", Query(category=3), 15))
    assert got and all(v.category == 3 for v in got)
    popular = run(retrieval.retrieve("popular", Query(), 10))
    scores = [v.score for v in popular]
    assert len(popular) == 10 and scores == sorted(scores, reverse=True) and scores[0] > 0
