"""Item-item from precomputed lists on a real artefact dir: the same answers as the ANN search
it replaces, fresh for uploads, and a dir without lists still serving."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.unit.test_coldstart_index import NEW_ID, as_new, lookalike
from vidrec.backends.coldstart import ItemEmbedder, load_item_embedder
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import ServingConfig
from vidrec.pipeline.retrievers import Query
from vidrec.retrieval import build_neighbour_lists, exact_index
from vidrec.retrieval.neighbours import NEIGHBOUR_FILES

torch.set_num_threads(1)
CFG = ServingConfig()


def related_ids(r: LocalRetrieval, anchors: list[int], k: int) -> list[int]:
    return [
        v.video_id for v in asyncio.run(r.retrieve("related", Query(video_ids=tuple(anchors)), k))
    ]


@pytest.fixture(scope="module")
def state(artefacts: Path) -> ServingState:
    return ServingState.load(artefacts)


@pytest.fixture(scope="module")
def embedder(artefacts: Path) -> ItemEmbedder:
    return load_item_embedder(ServingState.load(artefacts))


def test_pipeline_writes_lists_that_agree_with_the_ann_search(state: ServingState) -> None:
    """The issue's acceptance criterion: mean overlap of the top 100 >= 0.9."""
    lists = state.neighbours
    assert lists is not None and lists.k == CFG.neighbours_k == 100
    assert len(lists) == state.embedding_ids.size
    assert state.manifest.artefacts["neighbours"] == "index"
    assert state.manifest.metrics["neighbours.recall_vs_exact"] >= 0.9
    anchors = np.random.default_rng(0).choice(state.embedding_ids, 300, replace=False)
    row = {int(v): i for i, v in enumerate(state.embedding_ids)}
    emb = state.item_embeddings[[row[int(a)] for a in anchors]]
    searched, _ = state.index.search(emb, lists.k + 1)
    got, _, _, _ = lists.gather(anchors)
    overlap = [
        np.intersect1d(g[g >= 0], s[(s >= 0) & (s != a)][: lists.k]).size / lists.k
        for g, s, a in zip(got, searched, anchors, strict=True)
    ]
    assert np.mean(overlap) >= 0.9


def test_related_from_lists_returns_what_the_search_returns(state: ServingState) -> None:
    with_lists = LocalRetrieval(state, CFG)
    searched = LocalRetrieval(dataclasses.replace(state, neighbours=None), CFG)
    rng = np.random.default_rng(1)
    overlaps = []
    for _ in range(20):
        anchors = rng.choice(state.embedding_ids, 5, replace=False).tolist()
        a = related_ids(with_lists, anchors, CFG.related_k)
        b = related_ids(searched, anchors, CFG.related_k)
        assert len(a) == len(set(a)) == CFG.related_k and not set(a) & set(anchors)
        overlaps.append(len(set(a) & set(b)) / len(b))
    assert np.mean(overlaps) >= 0.9


def test_related_is_identical_on_an_exact_index(state: ServingState) -> None:
    """With exact search both paths must give the same items, anchors and order."""
    exact = exact_index(state.item_embeddings, state.embedding_ids)
    lists = build_neighbour_lists(exact, state.item_embeddings, state.embedding_ids, 50)
    flat = dataclasses.replace(state, index=exact, neighbours=lists)
    with_lists = LocalRetrieval(flat, CFG)
    searched = LocalRetrieval(dataclasses.replace(flat, neighbours=None), CFG)
    rng = np.random.default_rng(2)
    for k in (1, 30, 50):
        anchors = rng.choice(state.embedding_ids, 5, replace=False).tolist()
        a = asyncio.run(with_lists.retrieve("related", Query(video_ids=(*anchors, -5)), k))
        b = asyncio.run(searched.retrieve("related", Query(video_ids=(*anchors, -5)), k))
        assert [(v.video_id, v.anchor_video_id) for v in a] == [
            (v.video_id, v.anchor_video_id) for v in b
        ]
        np.testing.assert_allclose([v.score for v in a], [v.score for v in b], rtol=1e-5)
    # Asked for more than the lists hold: the search answers, so nothing is cut short.
    anchors = rng.choice(state.embedding_ids, 2, replace=False).tolist()
    assert related_ids(with_lists, anchors, 80) == related_ids(searched, anchors, 80)


def test_upload_gets_a_list_and_enters_its_neighbours_lists(
    artefacts: Path, embedder: ItemEmbedder
) -> None:
    old_state = ServingState.load(artefacts)  # its own index: adds mutate it
    r = LocalRetrieval(old_state, CFG)
    new = as_new([lookalike(old_state, int(old_state.catalogue.video_id[3]))], embedder)
    nearest = int(r.index.search(new.embeddings, 1)[0][0, 0])
    before = r._view.neighbours
    assert before is not None and not before.has(np.array([NEW_ID]))[0]

    assert r.add_videos(new) == 1

    lists = r._view.neighbours
    assert lists is not None and lists.has(np.array([NEW_ID]))[0]
    own, _, _, _ = lists.gather(np.array([NEW_ID]))
    assert own[0, 0] == nearest and NEW_ID not in own[0]
    assert NEW_ID in lists.gather(np.array([nearest]))[0][0]
    assert NEW_ID not in before.gather(np.array([nearest]))[0][0]  # readers' set unchanged
    assert NEW_ID in related_ids(r, [nearest], 20)  # "because you watched" an older video
    assert nearest in related_ids(r, [NEW_ID], 20)


def test_without_symmetric_update_old_lists_stay_as_built(
    artefacts: Path, embedder: ItemEmbedder
) -> None:
    cfg = dataclasses.replace(CFG, neighbours_symmetric=False)
    r = LocalRetrieval(ServingState.load(artefacts), cfg)
    new = as_new([lookalike(r.state, int(r.state.catalogue.video_id[3]))], embedder)
    nearest = int(r.index.search(new.embeddings, 1)[0][0, 0])
    r.add_videos(new)
    assert NEW_ID not in related_ids(r, [nearest], 20)
    assert nearest in related_ids(r, [NEW_ID], 20)  # its own list is there


def test_artefact_dir_without_lists_still_serves(artefacts: Path, tmp_path: Path) -> None:
    root = tmp_path / "no-lists"
    shutil.copytree(artefacts, root, ignore=shutil.ignore_patterns(*NEIGHBOUR_FILES))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["artefacts"].pop("neighbours")  # as written before lists existed
    (root / "manifest.json").write_text(json.dumps(manifest))
    state = ServingState.load(root)
    assert state.neighbours is None
    anchors = state.embedding_ids[[4, 8]].tolist()
    got = related_ids(LocalRetrieval(state, CFG), anchors, 30)
    assert len(got) == 30 and not set(got) & set(anchors)
    with_lists = related_ids(LocalRetrieval(ServingState.load(artefacts), CFG), anchors, 30)
    assert len(set(got) & set(with_lists)) >= 27


def test_related_during_uploads_never_fails_or_returns_unknown_ids(
    artefacts: Path, embedder: ItemEmbedder
) -> None:
    """Lists are swapped in whole: a reader sees the old set or the new one, never a mix."""
    r = LocalRetrieval(ServingState.load(artefacts), CFG)
    base = int(r.state.catalogue.video_id[3])
    nearest = int(
        r.index.search(as_new([lookalike(r.state, base)], embedder).embeddings, 1)[0][0, 0]
    )
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                got = asyncio.run(
                    r.retrieve("related", Query(video_ids=(nearest, base, NEW_ID)), 50)
                )
                ids = np.array([v.video_id for v in got], dtype=np.int64)
                assert ids.size == np.unique(ids).size > 0
                assert r.catalogue.rows(ids)[1].all()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(5):
        r.add_videos(as_new([lookalike(r.state, base, NEW_ID + 10 * i + j) for j in range(5)],
                            embedder))  # fmt: skip
    done.set()
    for t in readers:
        t.join()
    assert errors == []
    lists = r._view.neighbours
    assert lists is not None and lists.has(NEW_ID + np.arange(0, 50, 10)).all()
