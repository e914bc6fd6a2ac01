from pathlib import Path

import numpy as np
import pytest

from tests.unit.data_fixtures import real_catalog
from vidrec.data.kuairec import fit_duration_lognormal
from vidrec.data.scale import DURATION_LOG_MU, DURATION_LOG_SIGMA, ScaleCatalog, scale_catalog
from vidrec.schema import N_CATEGORIES

N = 100_000


@pytest.fixture(scope="module")
def catalog() -> ScaleCatalog:
    return scale_catalog(N, dim=32, seed=0, chunk=30_000)


def test_shapes_types_and_unit_norm(catalog: ScaleCatalog) -> None:
    assert catalog.embeddings.shape == (N, 32) and catalog.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(catalog.embeddings, axis=1), 1.0, atol=1e-5)
    assert (catalog.video_ids == np.arange(N)).all()
    assert catalog.primary_category.min() >= 0 and catalog.primary_category.max() < N_CATEGORIES
    assert (catalog.duration_ms >= 1_000).all() and (catalog.duration_ms <= 600_000).all()
    per_creator = np.bincount(catalog.creator_ids)
    per_creator = per_creator[per_creator > 0]
    assert per_creator.max() > 20 * np.median(per_creator)  # power-law creators


def test_same_seed_same_catalogue_other_seed_other(catalog: ScaleCatalog) -> None:
    again = scale_catalog(N, dim=32, seed=0, chunk=30_000)
    np.testing.assert_array_equal(again.embeddings, catalog.embeddings)
    np.testing.assert_array_equal(again.creator_ids, catalog.creator_ids)
    other = scale_catalog(N, dim=32, seed=1, chunk=30_000)
    assert not np.array_equal(other.embeddings, catalog.embeddings)


def test_nearest_neighbours_share_a_category(catalog: ScaleCatalog) -> None:
    queries = catalog.embeddings[:200]
    sims = queries @ catalog.embeddings.T
    sims[np.arange(200), np.arange(200)] = -np.inf
    nearest = np.argmax(sims, axis=1)
    same = (catalog.primary_category[nearest] == catalog.primary_category[:200]).mean()
    chance = (np.bincount(catalog.primary_category) / N) ** 2
    assert same > 0.9 and same > 5 * chance.sum()


def test_duration_constants_match_the_real_fit() -> None:
    mu, sigma = fit_duration_lognormal(real_catalog().interactions["video_duration"].to_numpy())
    assert mu == pytest.approx(DURATION_LOG_MU, abs=1e-3)
    assert sigma == pytest.approx(DURATION_LOG_SIGMA, abs=1e-3)


def test_save_and_load_round_trip(catalog: ScaleCatalog, tmp_path: Path) -> None:
    loaded = ScaleCatalog.load(catalog.save(tmp_path / "scale"))
    np.testing.assert_array_equal(loaded.embeddings, catalog.embeddings)
    assert loaded.videos().equals(catalog.videos())
    with pytest.raises(FileNotFoundError, match=r"nowhere/videos\.parquet: missing"):
        ScaleCatalog.load(tmp_path / "nowhere")
