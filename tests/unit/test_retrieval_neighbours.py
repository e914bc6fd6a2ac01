"""Precomputed item-item lists: the same answers as the search they replace, persistence, and
live updates that never change a set a reader already holds."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from vidrec.retrieval import (
    AnnIndex,
    NeighbourLists,
    build_index,
    build_neighbour_lists,
    exact_index,
    faiss_threads,
)
from vidrec.retrieval.neighbours import NEIGHBOUR_FILES, PAD_SCORE, neighbours_from_search

DIM = 16
K = 20


def unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def flat() -> tuple[AnnIndex, np.ndarray, np.ndarray]:
    items = unit_rows(2_000, seed=1)
    ids = np.random.default_rng(2).permutation(1_000_000)[:2_000].astype(np.int64) + 5
    return exact_index(items, ids), items, ids


def test_lists_equal_the_exact_search_without_the_item_itself(
    flat: tuple[AnnIndex, np.ndarray, np.ndarray],
) -> None:
    index, items, ids = flat
    lists = build_neighbour_lists(index, items, ids, K, threads=2)
    assert len(lists) == ids.size and lists.k == K
    got, scores, anchor_of, rank = lists.gather(ids[:50])
    want, want_scores = index.search(items[:50], K + 1)
    assert (want[:, 0] == ids[:50]).all()  # exact search: each item is its own best match
    np.testing.assert_array_equal(got, want[:, 1:])
    np.testing.assert_allclose(scores, want_scores[:, 1:], rtol=1e-6)
    assert (anchor_of == ids[:50, None]).all()
    assert (rank == np.arange(1, K + 1)).all()  # rank 0 is the anchor in a search
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_gather_first_k_and_unknown_anchor_rows(
    flat: tuple[AnnIndex, np.ndarray, np.ndarray],
) -> None:
    index, items, ids = flat
    lists = build_neighbour_lists(index, items, ids, K)
    full, _, _, _ = lists.gather(ids[:3])
    part, _, _, rank = lists.gather(np.array([ids[0], -7, ids[2]]), 5)
    assert part.shape == (3, 5) and (rank[0] == np.arange(1, 6)).all()
    np.testing.assert_array_equal(part[[0, 2]], full[[0, 2], :5])
    assert (part[1] == -1).all()
    assert lists.has(np.array([ids[0], -7])).tolist() == [True, False]
    with pytest.raises(ValueError, match="k must be in"):
        lists.gather(ids[:1], K + 1)


def test_hnsw_lists_match_a_search_with_the_same_parameters() -> None:
    items = unit_rows(5_000, seed=3)
    ids = np.arange(5_000, dtype=np.int64) * 3
    hnsw = build_index(items, ids)
    with faiss_threads(1):
        lists = build_neighbour_lists(hnsw, items, ids, K)
    searched, _ = hnsw.search(items[:200], K + 1)
    got, _, _, _ = lists.gather(ids[:200])
    pairs = zip(got, searched, ids[:200], strict=True)
    overlap = [np.intersect1d(g, s[s != a]).size / K for g, s, a in pairs]
    assert np.mean(overlap) >= 0.99
    exact, _ = exact_index(items, ids).search(items[:200], K + 1)
    recall = [np.intersect1d(g, e[1:]).size / K for g, e in zip(got, exact, strict=True)]
    assert np.mean(recall) >= 0.9


def test_owner_missing_from_its_search_drops_the_last_hit_and_short_rows_pad() -> None:
    owners = np.array([10, 20], np.int64)
    found = np.array([[10, 1, 2, 3], [4, 5, -1, -1]], np.int64)
    scores = np.array([[1.0, 0.9, 0.8, 0.7], [0.6, 0.5, -3e38, -3e38]], np.float32)
    ids, s = neighbours_from_search(owners, found, scores, 3)
    assert ids.tolist() == [[1, 2, 3], [4, 5, -1]]
    assert s[1, 2] == PAD_SCORE and s[0].tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_save_load_round_trip_memory_mapped(
    flat: tuple[AnnIndex, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    index, items, ids = flat
    lists = build_neighbour_lists(index, items, ids, K)
    assert not NeighbourLists.present(tmp_path)
    size = lists.save(tmp_path)
    assert NeighbourLists.present(tmp_path)
    assert size == sum((tmp_path / n).stat().st_size for n in NEIGHBOUR_FILES)
    loaded = NeighbourLists.load(tmp_path)
    assert isinstance(loaded.base.ids, np.memmap)
    for a, b in zip(loaded.gather(ids), lists.gather(ids), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / NEIGHBOUR_FILES[1]).unlink()
    with pytest.raises(FileNotFoundError, match=NEIGHBOUR_FILES[1]):
        NeighbourLists.load(tmp_path)


def test_new_video_gets_a_list_and_enters_the_lists_it_beats(
    flat: tuple[AnnIndex, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    _, items, ids = flat
    index = exact_index(items, ids)  # a private copy: this test adds to it
    lists = build_neighbour_lists(index, items, ids, K)
    twin = items[7] + 0.01 * unit_rows(1, seed=9)[0]  # next to video ids[7]
    new_emb = (twin / np.linalg.norm(twin))[None, :].astype(np.float32)
    new_id = np.array([99_999_999], np.int64)
    index.index.add(new_emb)
    index.video_ids = np.concatenate([index.video_ids, new_id])
    found, scores = index.search(new_emb, K + 1)

    plain = lists.with_new_videos(new_id, found, scores, symmetric=False)
    updated = lists.with_new_videos(new_id, found, scores)

    own, _, _, _ = updated.gather(new_id)
    np.testing.assert_array_equal(own[0], found[0][found[0] != new_id[0]][:K])
    assert own[0, 0] == ids[7]
    assert new_id[0] not in plain.gather(ids[7:8])[0]
    after, after_scores, _, _ = updated.gather(ids[7:8])
    assert after[0, 0] == new_id[0]  # its nearest video now lists it first
    assert (after_scores[0, :-1] >= after_scores[0, 1:]).all()
    truth, _ = index.search(items[7:8], K + 1)
    np.testing.assert_array_equal(after[0], truth[0][1:])  # = a search over the grown index
    assert new_id[0] not in lists.gather(ids[7:8])[0]  # the old set is untouched
    assert len(updated) == ids.size + 1
    # Every list the new video entered is exactly what a fresh exact search now gives.
    holders = ids[(updated.gather(ids)[0] == new_id[0]).any(axis=1)]
    assert holders.size >= 1
    fresh = build_neighbour_lists(index, np.concatenate([items, new_emb]),
                                  np.concatenate([ids, new_id]), K)  # fmt: skip
    np.testing.assert_array_equal(updated.gather(holders)[0], fresh.gather(holders)[0])
    updated.save(tmp_path)  # the patch is folded into the written files
    np.testing.assert_array_equal(NeighbourLists.load(tmp_path).gather(new_id)[0], own)


def test_faiss_threads_restores_the_previous_setting() -> None:
    faiss.omp_set_num_threads(1)
    with faiss_threads(2):
        assert faiss.omp_get_max_threads() == 2
    assert faiss.omp_get_max_threads() == 1
