"""TritonModels against the REAL tritonserver: the candidate version comes up beside the
stable one before any traffic moves, and the old stable goes away after promotion."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidrec.rollout.triton_control import ModelLoadError, TritonModels

sys.path.insert(0, str(Path(__file__).parent))
from triton_server import triton_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonModels]:
    """A copy of the test repository with versions 1 and 2 on disk, version 1 loaded."""
    work = tmp_path_factory.mktemp("rollout-triton")
    repo = work / "model_repository"
    shutil.copytree(artefacts / "model_repository" / "ranker", repo / "ranker")
    shutil.copytree(repo / "ranker" / "1", repo / "ranker" / "2")
    with triton_server(repo, models=[], workdir=work) as server:
        loader = TritonModels(server.http_url, "ranker")
        loader.ensure_loaded(1)
        yield loader
        loader.close()


def test_rollout_lifecycle_loads_candidate_then_unloads_old_stable(models: TritonModels) -> None:
    # The plain first load brought every directory up (version_policy: all): narrow to v1.
    models.unload(2)
    assert models.ready_versions() == {1}
    assert not models.ready(2)

    models.ensure_loaded(2)  # candidate loaded before traffic moves; stable keeps serving
    assert models.ready(1) and models.ready(2)

    models.ensure_loaded(2)  # idempotent: the operator calls it every tick
    assert models.ready_versions() == {1, 2}

    models.unload(1)  # after promotion and the scale-down delay
    assert models.ready_versions() == {2}
    assert models.ready(2) and not models.ready(1)


def test_missing_version_is_refused_and_serving_versions_stay(models: TritonModels) -> None:
    before = models.ready_versions()
    with pytest.raises(ModelLoadError):
        models.ensure_loaded(9)
    assert models.ready_versions() == before


def test_bad_version_names_the_field(models: TritonModels) -> None:
    with pytest.raises(ValueError, match="version"):
        models.ensure_loaded(0)
