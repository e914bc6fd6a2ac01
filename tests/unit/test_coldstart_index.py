"""Live additions to the in-process retrieval: a new video joins the ANN index, the fresh list
and the catalogue while searches keep running, and nothing that was there before is lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch

from vidrec.backends.coldstart import ItemEmbedder, load_item_embedder, videos_frame
from vidrec.backends.retrieval import LocalRetrieval, NewVideos
from vidrec.backends.serving_state import ServingState
from vidrec.pipeline.retrievers import Query
from vidrec.schema import VideoUpload

torch.set_num_threads(1)
NEW_ID = 90_000_001  # far above every KuaiRec id
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def state(artefacts: Path) -> ServingState:
    return ServingState.load(artefacts)  # per test: additions mutate the index


@pytest.fixture(scope="module")
def embedder(artefacts: Path) -> ItemEmbedder:
    return load_item_embedder(ServingState.load(artefacts))


def lookalike(state: ServingState, video_id: int, new_id: int = NEW_ID) -> VideoUpload:
    """A new upload by the same creator, in the same category, as an existing video."""
    cat = state.catalogue
    row = int(cat.rows(np.asarray([video_id]))[0][0])
    category = int(cat.category[row])
    return VideoUpload(
        video_id=new_id, creator_id=int(cat.creator_id[row]),
        category_ids=[category] if category >= 0 else [], duration_ms=30_000,
        upload_ts=state.clock_ms(),  # the newest upload "now" can see
    )  # fmt: skip


def as_new(uploads: list[VideoUpload], embedder: ItemEmbedder) -> NewVideos:
    df = videos_frame(uploads)
    return NewVideos(
        video_id=df["video_id"].to_numpy(), creator_id=df["creator_id"].to_numpy(),
        category=df["primary_category"].fill_null(-1).to_numpy(),
        upload_ts=df["upload_ts"].to_numpy(), embeddings=embedder.embed_videos(df),
    )  # fmt: skip


def test_new_video_is_a_unit_vector_found_next_to_its_nearest_existing_video(
    state: ServingState, embedder: ItemEmbedder
) -> None:
    r = LocalRetrieval(state)
    new = as_new([lookalike(state, int(state.catalogue.video_id[0]))], embedder)
    assert new.embeddings.shape == (1, state.index.dim)
    assert np.linalg.norm(new.embeddings[0]) == pytest.approx(1.0, abs=1e-5)
    ids, _ = r.index.search(new.embeddings, 1)
    nearest = int(ids[0, 0])  # the existing video most like the upload
    assert NEW_ID not in [
        v.video_id for v in run(r.retrieve("related", Query(video_ids=(nearest,)), 20))
    ]

    assert r.add_videos(new) == 1

    assert NEW_ID in [
        v.video_id for v in run(r.retrieve("related", Query(video_ids=(nearest,)), 20))
    ]
    own = run(
        r.retrieve("related", Query(video_ids=(NEW_ID,)), 5)
    )  # and the new video is an anchor itself
    assert own and NEW_ID not in [v.video_id for v in own]


def test_live_add_keeps_old_ids_and_serves_the_upload_as_fresh(
    state: ServingState, embedder: ItemEmbedder
) -> None:
    r = LocalRetrieval(state)
    old_ids = state.embedding_ids[:50]
    size = len(r.index)
    uploads = [lookalike(state, int(v), NEW_ID + i) for i, v in enumerate(old_ids[:3])]
    new = as_new(uploads, embedder)

    assert r.add_videos(new) == 3
    assert r.add_videos(new) == 0  # a replayed upload changes nothing
    assert len(r.index) == size + 3

    found, _ = r.index.search(state.item_embeddings[:50], 1)
    assert (found[:, 0] == old_ids).mean() > 0.95  # HNSW: each old video still finds itself
    fresh = run(r.retrieve("fresh", Query(now_ms=state.clock_ms()), 3))
    assert {v.video_id for v in fresh} == set(new.video_id.tolist())
    creator = int(new.creator_id[0])
    assert NEW_ID in [
        v.video_id
        for v in run(r.retrieve("same_creator", Query(video_ids=(int(old_ids[0]),)), 200))
    ]
    assert r.catalogue.creator_id[r.catalogue.rows(np.asarray([NEW_ID]))[0][0]] == creator


def test_searches_during_adds_never_fail_or_return_unknown_ids(
    state: ServingState, embedder: ItemEmbedder
) -> None:
    r = LocalRetrieval(state)
    queries = state.item_embeddings[:8]
    errors: list[BaseException] = []
    done = threading.Event()

    def search() -> None:
        try:
            while not done.is_set():
                ids, _ = r.index.search(queries, 20)
                known = r.catalogue.rows(ids[ids >= 0])[1]
                assert known.all()  # every id the index returns has a catalogue row
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    base = int(state.catalogue.video_id[0])
    for i in range(10):
        uploads = [lookalike(state, base, NEW_ID + 10 * i + j) for j in range(10)]
        r.add_videos(as_new(uploads, embedder))
    done.set()
    for t in threads:
        t.join()
    assert errors == []
    assert len(r.index) == len(state.embedding_ids) + 100
