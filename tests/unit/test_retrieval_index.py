"""FAISS index: recall against exact search, id mapping, persistence, IVF-PQ, validation."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from vidrec.retrieval import (
    AnnIndex,
    IndexParams,
    build_index,
    exact_index,
    index_params_for,
    make_index,
    recall_at_k,
)
from vidrec.retrieval.index import HNSW_MAX_ITEMS, IDS_FILE

faiss.omp_set_num_threads(1)

DIM = 32


def clustered(n: int, seed: int, n_clusters: int = 64) -> np.ndarray:
    """Unit vectors around random centres: the shape real item embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, DIM))
    x = centres[rng.integers(0, n_clusters, n)] + 0.35 * rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def catalogue() -> tuple[np.ndarray, np.ndarray]:
    items = clustered(20_000, seed=1)
    # Video ids that are not row numbers, so a missing id mapping shows.
    ids = np.random.default_rng(2).permutation(10_000_000)[:20_000].astype(np.int64) + 7
    return items, ids


@pytest.fixture(scope="module")
def hnsw(catalogue: tuple[np.ndarray, np.ndarray]) -> AnnIndex:
    items, ids = catalogue
    return build_index(items, ids)  # the production defaults


def test_hnsw_recall_at_500_vs_exact(
    catalogue: tuple[np.ndarray, np.ndarray], hnsw: AnnIndex
) -> None:
    items, ids = catalogue
    queries = clustered(100, seed=3)
    recall = recall_at_k(hnsw, exact_index(items, ids), queries, k=500)
    assert recall >= 0.95


def test_search_returns_video_ids_and_cosine_scores(
    catalogue: tuple[np.ndarray, np.ndarray], hnsw: AnnIndex
) -> None:
    items, ids = catalogue
    rows = np.array([0, 17, 19_999])
    # Un-normalised queries: the index must normalise them itself.
    found, scores = hnsw.search(items[rows] * 3.0, k=5)
    assert found.dtype == np.int64 and found.shape == (3, 5)
    np.testing.assert_array_equal(found[:, 0], ids[rows])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    expected = items @ items[rows].T
    for q in range(3):
        returned = np.searchsorted(np.sort(ids), found[q])
        order = np.argsort(ids)
        np.testing.assert_allclose(scores[q], expected[order[returned], q], atol=1e-5)


def test_k_beyond_catalogue_pads_with_minus_one() -> None:
    items = clustered(10, seed=4)
    ids = np.arange(100, 110, dtype=np.int64)
    found, _ = exact_index(items, ids).search(items[:2], k=15)
    assert set(found[0, :10]) == set(ids)
    assert (found[:, 10:] == -1).all()


def test_save_load_round_trip(tmp_path: Path, hnsw: AnnIndex) -> None:
    hnsw.save(tmp_path / "index")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [
        "index_params.json",
        "items.faiss",
        "video_ids.npy",
    ]
    loaded = AnnIndex.load(tmp_path / "index")
    assert loaded.params == hnsw.params and len(loaded) == len(hnsw)
    queries = clustered(20, seed=5)
    for a, b in zip(loaded.search(queries, 50), hnsw.search(queries, 50), strict=True):
        np.testing.assert_array_equal(a, b)


def test_load_names_the_broken_file(tmp_path: Path, hnsw: AnnIndex) -> None:
    hnsw.save(tmp_path)
    np.save(tmp_path / IDS_FILE, hnsw.video_ids[:-1])
    with pytest.raises(ValueError, match=r"video_ids\.npy"):
        AnnIndex.load(tmp_path)
    (tmp_path / "index_params.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"index_params\.json"):
        AnnIndex.load(tmp_path)


def test_ivfpq_finds_neighbours(tmp_path: Path, catalogue: tuple[np.ndarray, np.ndarray]) -> None:
    items, ids = catalogue
    params = IndexParams(kind="ivfpq", nlist=64, pq_m=16, nprobe=16, train_sample=5_000)
    index = build_index(items, ids, params)
    assert index.index.is_trained and len(index) == 20_000
    queries = clustered(50, seed=6)
    recall = recall_at_k(index, exact_index(items, ids), queries, k=100)
    assert recall >= 0.5  # PQ codes are lossy; far better than chance (100/20k)
    found, _ = index.search(items[:20], k=10)
    assert np.mean([ids[i] in found[i] for i in range(20)]) >= 0.8
    reloaded = AnnIndex.load(index.save(tmp_path))
    np.testing.assert_array_equal(reloaded.search(queries, 10)[0], index.search(queries, 10)[0])


def test_index_params_for_switches_to_ivfpq_for_large_catalogues() -> None:
    assert index_params_for(HNSW_MAX_ITEMS - 1, 32).kind == "hnsw"
    large = index_params_for(10_000_000, 32)
    assert large.kind == "ivfpq"
    assert 32 % large.pq_m == 0 and large.nlist >= 4096
    small = make_index(clustered(500, seed=7), np.arange(500, dtype=np.int64))
    assert small.params.kind == "hnsw" and len(small) == 500


@pytest.mark.parametrize(
    ("embeddings", "ids", "message"),
    [
        (np.ones((3, 4), dtype=np.float64), np.arange(3, dtype=np.int64), "float32"),
        (np.ones((3, 4), dtype=np.float32), np.array([1, 1, 2], dtype=np.int64), "not unique"),
        (np.ones((3, 4), dtype=np.float32), np.arange(2, dtype=np.int64), "2 ids for 3"),
        (np.zeros((3, 4), dtype=np.float32), np.arange(3, dtype=np.int64), "zero vector"),
    ],
)
def test_bad_input_is_rejected(embeddings: np.ndarray, ids: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_index(embeddings, ids)


def test_bad_params_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"IndexParams\.nprobe"):
        IndexParams(nprobe=0)
    with pytest.raises(ValueError, match=r"IndexParams\.kind"):
        IndexParams(kind="lsh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"params\.json: unknown field"):
        IndexParams.from_json('{"kind": "flat", "bogus": 1}', "params.json")
