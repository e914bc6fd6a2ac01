"""Scale artefacts carry item-item lists and the build figures `vidrec bench serving` reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console

from vidrec.retrieval import AnnIndex, IndexParams, NeighbourLists
from vidrec_dev.bench.scale_artefacts import SCALE_META, write_scale_artefacts


def test_scale_dir_has_lists_and_scale_meta(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    for rel in ("models", "model_repository/ranker", "data", "index"):
        (demo / rel).mkdir(parents=True)
    (demo / "manifest.json").write_text("{}")
    (demo / "model_repository/ranker/config.pbtxt").write_text("")
    np.save(demo / "models/item_embeddings.npy", np.zeros((3, 8), np.float32))
    pl.DataFrame({"user_id": [1]}).write_parquet(demo / "data/events.parquet")
    (demo / "index/index_params.json").write_text(IndexParams(kind="flat").to_json())
    dest = tmp_path / "scale"
    write_scale_artefacts(demo, dest, 400, Console(quiet=True), neighbours_k=10)

    meta = json.loads((dest / SCALE_META).read_text())
    assert meta["videos"] == 400 and meta["neighbours_k"] == 10
    assert meta["index_build_s"] >= 0 and meta["neighbours_build_s"] >= 0
    assert meta["index_bytes"] == (dest / "index/items.faiss").stat().st_size
    lists = NeighbourLists.load(dest / "index")
    assert len(lists) == 400 and lists.k == 10
    assert meta["neighbours_bytes"] >= lists.base.ids.nbytes + lists.base.scores.nbytes
    emb = np.load(dest / "models/item_embeddings.npy")
    index = AnnIndex.load(dest / "index")
    searched, _ = index.search(emb[:20], 11)  # exact: each video first, then its list
    np.testing.assert_array_equal(lists.gather(np.arange(20))[0], searched[:, 1:])
