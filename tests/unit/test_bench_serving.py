"""The serving bench's own helpers: percentiles, targets, the closed loop, the scale writer."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from vidrec.bench.scale_artefacts import (
    COMPLETE_MARKER,
    load_scale_catalog,
    scale_serving_table,
    write_scale_artefacts,
    write_scale_vectors,
)
from vidrec.bench.serving import Target, closed_loop, percentile_ms
from vidrec.data import scale_catalog
from vidrec.features import VIDEO_SPEC, pack_many, unpack_many
from vidrec.features.stores import VIDEO_ENTITY, InMemoryStore
from vidrec.retrieval import AnnIndex, IndexParams


def test_percentile_ms_converts_seconds_and_handles_empty() -> None:
    assert percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2.0)
    assert percentile_ms([0.010] * 99 + [1.0], 100) == pytest.approx(1000.0)
    assert np.isnan(percentile_ms([], 50))


def test_target_directions() -> None:
    assert Target("x", 1.4, 1.5, at_most=True).passed
    assert not Target("x", 1.6, 1.5, at_most=True).passed
    assert Target("x", 3.2, 3.0, at_most=False).passed
    assert Target("x", 2.9, 3.0, at_most=False).row()[3].endswith("MISS[/]")


def test_closed_loop_counts_every_call_and_failures() -> None:
    calls = 0

    async def call(rng: random.Random) -> bool:
        nonlocal calls
        calls += 1
        mine = calls
        await asyncio.sleep(0.001)
        return mine % 2 == 0

    latencies, bad = asyncio.run(closed_loop(call, 4, 0.05))
    assert len(latencies) == calls > 4
    assert bad == calls - calls // 2


def _base_table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "video_id": [0, 1, 2],
            "creator_id": [5, 6, 7],
            "primary_category": [1, 2, None],
            "upload_ts": [1_000, 2_000, 3_000],
            "popularity": [3.0, 2.0, 1.0],
        },
        schema_overrides={"primary_category": pl.Int16},
    )


def test_scale_serving_table_keeps_real_rows_and_adds_the_rest() -> None:
    catalog = scale_catalog(50, dim=8)
    table = scale_serving_table(_base_table(), catalog)
    assert table["video_id"].to_list() == list(range(50))
    assert table.schema == _base_table().schema
    assert table["popularity"][:3].to_list() == [3.0, 2.0, 1.0]
    assert (table["popularity"][3:] == 0.0).all()
    assert (table["creator_id"][3:] > 7).all()  # synthetic creators never join real ones


def test_write_scale_vectors_fills_every_video_and_keeps_real_ones() -> None:
    store = InMemoryStore(n_buckets=4)
    real = np.random.default_rng(0).random((3, VIDEO_SPEC.dim), dtype=np.float32)
    store.put_many(VIDEO_ENTITY, [0, 1, 2], pack_many(VIDEO_SPEC, real, 10))
    table = scale_serving_table(_base_table(), scale_catalog(40, dim=8))
    assert write_scale_vectors(store, table, at_ms=99, progress=False) == 37
    values, _, found = unpack_many(VIDEO_SPEC, store.get_many(VIDEO_ENTITY, list(range(40))))
    assert found.all()
    np.testing.assert_array_equal(values[:3], real)
    creator = VIDEO_SPEC.slice("creator_id")
    np.testing.assert_array_equal(values[3:, creator][:, 0], table["creator_id"][3:].to_numpy())
    assert (values[3:, VIDEO_SPEC.slice("categories")].sum(axis=1) == 1).all()


def test_write_scale_artefacts_builds_a_loadable_dir_once(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    for rel in ("models", "model_repository/ranker", "data", "index"):
        (demo / rel).mkdir(parents=True)
    (demo / "manifest.json").write_text("{}")
    (demo / "model_repository/ranker/config.pbtxt").write_text("")
    np.save(demo / "models/item_embeddings.npy", np.zeros((3, 8), np.float32))
    pl.DataFrame({"user_id": [1]}).write_parquet(demo / "data/events.parquet")
    (demo / "index/index_params.json").write_text(IndexParams(kind="hnsw", hnsw_m=8).to_json())
    dest = tmp_path / "scale"
    quiet = Console(quiet=True)
    write_scale_artefacts(demo, dest, 300, quiet)
    assert (dest / COMPLETE_MARKER).is_file()
    index = AnnIndex.load(dest / "index")
    assert len(index) == 300
    np.testing.assert_array_equal(np.load(dest / "models/video_ids.npy"), np.arange(300))
    assert np.load(dest / "models/item_embeddings.npy").shape == (300, 8)
    assert len(load_scale_catalog(dest).video_ids) == 300
    (dest / "index/items.faiss").unlink()
    write_scale_artefacts(demo, dest, 300, quiet)  # complete: reused, not rebuilt
    assert not (dest / "index/items.faiss").exists()
