"""Bring your own data: a dataset that is not KuaiRec trains, exports and serves a feed.

``tests/dataset_fixture.py`` writes ~17k interactions of 160 users over a catalogue whose
uploads span four years (more than 2^36 ms, which the feature timelines once refused), with
the users' own feature columns. `vidrec pipeline run --dataset` (the `test` profile) must pass
the quality gate on it and export artefacts that the serving code loads and retrieves from.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.dataset_fixture import make_dataset, write_dataset
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import ServingConfig
from vidrec.contracts.manifest import Manifest, read_manifest
from vidrec.features.offline import users_at
from vidrec.features.point_in_time import FeatureState
from vidrec.pipeline.retrievers import Query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest, pl.DataFrame]:
    root = tmp_path_factory.mktemp("byod")
    frames = make_dataset()
    write_dataset(root / "ds", frames, "csv")
    out = root / "out"
    result = subprocess.run(
        [sys.executable, "-m", "vidrec.cli", "pipeline", "run", "--profile", "test", "--quiet",
         "--dataset", str(root / "ds"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, read_manifest(out / "manifest.json"), frames[2]


def test_trains_beats_popularity_and_exports(built: tuple[Path, Manifest, pl.DataFrame]) -> None:
    out, manifest, _ = built
    m = manifest.metrics
    assert m["retrieval.recall@100"] > m["retrieval.popularity_recall@100"]
    assert m["ranking.ndcg@10"] > m["ranking.popularity_ndcg@10"]
    assert "data.watch_ratio_ks" not in m  # nothing was simulated
    assert str(manifest.data_window["dataset"]).endswith("ds")
    for rel in manifest.artefacts.values():
        assert (out / rel).exists(), rel
    for rel in ("models/ranker.onnx", "models/user_tower.onnx", "index/items.faiss",
                "serving/videos.parquet", "data/videos.parquet", "data/users.parquet"):  # fmt: skip
        assert (out / rel).is_file(), rel
    served = pl.read_parquet(out / "serving" / "videos.parquet")
    assert served.height == pl.read_parquet(out / "data" / "videos.parquet").height


def test_exported_artefacts_serve_a_personal_feed(
    built: tuple[Path, Manifest, pl.DataFrame],
) -> None:
    """The two-tower list of a user, from the exported ONNX tower and FAISS index, is mostly
    the category the user's own ``taste`` column names (popularity would not be)."""
    out, _, raw_users = built
    state = ServingState.load(out)
    local = LocalRetrieval(state, ServingConfig())
    events = pl.read_parquet(out / "data" / "events.parquet")
    videos = pl.read_parquet(out / "data" / "videos.parquet")
    users = pl.read_parquet(out / "data" / "users.parquet")
    now = state.clock_ms()
    vectors = users_at(FeatureState(events, videos, users), now)
    category = dict(zip(videos["video_id"], videos["primary_category"], strict=True))
    clicks = events.filter(pl.col("type") == "click")
    shares = []
    for row in vectors.head(30).iter_rows(named=True):
        user = row["user_id"]
        mine = clicks.filter(pl.col("user_id") == user)["video_id"]
        favourite = pl.Series([category[v] for v in mine]).mode()[0]
        history = tuple(int(v) for v in row["history"] if v >= 0)
        query = Query(user_vector=np.asarray(row["vector"], np.float32), video_ids=history,
                      now_ms=now)  # fmt: skip
        found = asyncio.run(local.retrieve("two_tower", query, 20))
        assert len(found) == 20
        shares.append(np.mean([category[v.video_id] == favourite for v in found]))
    assert raw_users.height >= 30
    assert float(np.mean(shares)) > 0.5, shares
