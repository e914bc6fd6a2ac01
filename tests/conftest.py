"""Shared test settings and the one artefact directory the serving tests are built on."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests import needs
from tests.marker_counts import (  # noqa: F401  (hooks: per-marker counts for .ci/run)
    pytest_collection_finish,
    pytest_runtest_logreport,
    pytest_sessionfinish,
)
from vidrec.config import load_config

torch.set_num_threads(2)

# The kserve SDK tests run in their own process from .venv-operator (scripts/run_tests.sh):
# kserve cannot share a process with tritonclient.grpc.
try:
    import kserve  # noqa: F401
except ImportError:
    collect_ignore = ["operator_kserve"]

ARTEFACT_SOURCES = ("data", "features", "models", "offline", "retrieval", "ranking")


def build_test_artefacts(config: pytest.Config) -> Path:
    """A `test`-profile artefact dir, built once per version of the code that makes it.

    The pipeline run costs ~20 s on an idle machine, so it is kept in pytest's cache under a
    hash of the offline sources (any change there rebuilds it) and shared by every test that
    needs served models. ``VIDREC_TEST_ARTEFACTS=DIR`` points the tests at an existing one.
    """
    if os.environ.get("VIDREC_TEST_ARTEFACTS"):
        return Path(os.environ["VIDREC_TEST_ARTEFACTS"])
    from vidrec.offline.run import run_pipeline

    src = Path(__file__).resolve().parents[1] / "src" / "vidrec"
    digest = hashlib.blake2b(digest_size=8)
    for name in ARTEFACT_SOURCES:
        for file in sorted((src / name).rglob("*.py")):
            digest.update(file.read_bytes())
    root = config.cache.mkdir("vidrec-test-artefacts")
    out = root / digest.hexdigest()
    with (root / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel pytest processes build it once
        if not (out / "manifest.json").is_file():
            run_pipeline(profile="test", out=out, seed=7, progress=False, cfg=load_config({}))
    return out


@pytest.fixture(scope="session")
def artefacts(pytestconfig: pytest.Config) -> Path:
    return build_test_artefacts(pytestconfig)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Let server helpers see the running test and its markers (:func:`needs.starts_server`)."""
    needs.CURRENT[:] = [item]
    try:
        yield
    finally:
        needs.CURRENT.clear()
