"""`bentoml build` accepts bentos/recommender/bentofile.yaml (what CI packages into an image)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidrec.config import REPO_ROOT

pytestmark = pytest.mark.integration


def test_bentoml_build_accepts_the_bentofile(tmp_path: Path) -> None:
    bentoml = Path(sys.executable).parent / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "home"), "BENTOML_DO_NOT_TRACK": "True"}
    build = subprocess.run(
        [str(bentoml), "build", "-f", "bentos/recommender/bentofile.yaml", "bentos/recommender"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    listed = subprocess.run(
        [str(bentoml), "list", "-o", "json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "vidrec-recommender" in listed.stdout
    bentos = list((tmp_path / "home" / "bentos" / "vidrec-recommender").glob("*/bento.yaml"))
    assert bentos and "service:Recommender" in bentos[0].read_text()
