"""The serving bench's own helpers: percentiles, targets, the closed loop, the scale writer."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from vidrec.config import load_config
from vidrec.data import scale_catalog
from vidrec.features import VIDEO_SPEC, pack_many, unpack_many
from vidrec.features.stores import VIDEO_ENTITY, InMemoryStore
from vidrec.retrieval import AnnIndex, IndexParams
from vidrec_dev.bench.scale_artefacts import (
    COMPLETE_MARKER,
    load_scale_catalog,
    scale_serving_table,
    write_scale_artefacts,
    write_scale_vectors,
)
from vidrec_dev.bench.serving import (
    LEVELS,
    BenchPorts,
    CPUObserver,
    Target,
    capacity,
    closed_loop,
    index_figures,
    level_record,
    percentile_ms,
    port_free,
    stage_figures,
    targets,
    write_results,
)


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


# -- load levels, targets and serving.json -------------------------------------------------

SERVICES = ("recommender", "triton", "redis")


def _level(clients: int, rps: float, p99_s: float, bad: int, stack_cpu_s: float) -> dict[str, Any]:
    """A level of 100 requests whose services spent ``stack_cpu_s`` in all (split 6:3:1)."""
    n = 100
    latencies = [0.010] * 98 + [p99_s] * 2
    cpu = dict(
        zip(SERVICES, (0.6 * stack_cpu_s, 0.3 * stack_cpu_s, 0.1 * stack_cpu_s), strict=True)
    )
    rss = {s: 100.0 for s in SERVICES}
    return level_record(clients, latencies, bad, n / rps, cpu, 0.05, rss)


def test_level_record_divides_each_trees_cpu_by_the_requests_served() -> None:
    lv = level_record(8, [0.01] * 200, 3, 4.0, {"recommender": 1.0, "redis": 0.2}, 0.4, {})
    assert lv["clients"] == 8 and lv["requests"] == 200 and lv["rps"] == pytest.approx(50.0)
    assert lv["cpu_ms_per_request"] == pytest.approx(
        {"recommender": 5.0, "redis": 1.0, "stack": 6.0}
    )
    assert lv["load_generator_cpu_ms_per_request"] == pytest.approx(2.0)
    assert "load_generator" not in lv["cpu_ms_per_request"]  # not the stack's cost
    assert lv["degraded_ratio"] == pytest.approx(0.015)
    assert lv["cores_busy"] == pytest.approx(0.4)
    assert lv["p50_ms"] == pytest.approx(10.0)


def test_capacity_is_the_best_level_within_the_sla_and_degraded_answers_count() -> None:
    levels = [
        _level(1, 30.0, 0.05, 0, 0.6),
        _level(4, 80.0, 0.09, 1, 0.6),  # within: p99 90 ms, 1 % degraded
        _level(8, 95.0, 0.09, 5, 0.6),  # fast enough, but 5 % degraded
        _level(16, 99.0, 0.30, 0, 0.6),  # too slow
    ]
    cap = capacity(levels, cores=2)
    assert cap["rps"] == pytest.approx(80.0) and cap["clients"] == 4
    assert cap["per_core"] == pytest.approx(40.0)
    assert capacity([_level(1, 30.0, 0.5, 0, 0.6)], cores=2)["rps"] == 0.0


def _results(stack_cpu_s: float) -> dict[str, Any]:
    levels = [_level(c, 40.0 * c**0.5, 0.02 * c, 0, stack_cpu_s) for c in (1, 8, 32)]
    stages = {
        "context/user_context": {"runs": 10, "p50_ms": 1.0, "cpu_ms": 0.8},
        "source/two_tower": {"runs": 10, "p50_ms": 2.0, "cpu_ms": None},
        "effect/impressions": {"runs": 10, "p50_ms": 0.5, "cpu_ms": 0.4},
    }
    return {
        "videos": 20_000,
        "candidates": 500,
        "cores": 2,
        "levels": levels,
        "capacity": capacity(levels, 2),
        "components": {"ranker_ort": {"calls": 3, "p50_ms": 1.0, "cpu_ms": 1.0, "rows": 500}},
        "index": {"videos": None, "index_build_s": None, "index_bytes": None},
        "stages": {
            "stages": stages,
            "sources_cpu_ms": 2.5,
            "cpu_ms_per_request": 5.0,
            "sum_p50_ms": 3.0,
            "critical_path_p50_ms": 3.0,
        },
        "figures": {
            "hydrate.raw_mget.p50_ms": 1.0,
            "hydrate.cold.p50_ms": 1.5,
            "hydrate.warm.p50_ms": 0.1,
            "triton.b500.batching_speedup": 1.6,
            "triton.b32.batching_speedup": 1.2,
        },
    }


def test_targets_read_the_8_client_level_capacity_hydration_and_batching() -> None:
    cheap = {t.name: t for t in targets(_results(stack_cpu_s=0.5), rows=500)}
    assert cheap["stack CPU ms per home request (8 clients)"].value == pytest.approx(5.0)
    assert cheap["stack CPU ms per home request (8 clients)"].passed
    assert cheap["p99 ms at 8 clients"].value == pytest.approx(160.0)
    assert not cheap["p99 ms at 8 clients"].passed
    assert cheap["degraded share at 8 clients"].passed
    assert cheap["hydrate 500 (cold LRU) ÷ standalone MGET"].value == pytest.approx(1.5)
    assert cheap["Triton batching ÷ none, 16 clients × 500 rows"].passed
    assert not cheap["Triton batching ÷ none, 16 clients × 32 rows"].passed
    per_core = cheap["capacity req/s per core (p99 ≤ 100 ms, ≤ 1 % degraded)"]
    assert per_core.value == pytest.approx(20.0) and not per_core.passed  # only 1 client: 40/s
    costly = {t.name: t for t in targets(_results(stack_cpu_s=2.0), rows=500)}
    assert not costly["stack CPU ms per home request (8 clients)"].passed  # 20 ms
    no_eight = _results(0.5) | {"levels": [_level(1, 40.0, 0.02, 0, 0.5)]}
    assert not any("8 clients" in t.name for t in targets(no_eight, rows=500))


def test_serving_json_has_the_keys_a_script_reads(tmp_path: Path) -> None:
    results = _results(stack_cpu_s=0.5)
    results["targets"] = [t.to_json() for t in targets(results, rows=500)]
    write_results(results, tmp_path)
    assert (tmp_path / "serving_latency.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "serving.json").read_text())
    for level in data["levels"]:
        for key in ("clients", "p50_ms", "p99_ms", "degraded_ratio", "rps", "requests"):
            assert isinstance(level[key], int | float), key
        cpu = level["cpu_ms_per_request"]
        assert set(cpu) == {*SERVICES, "stack"}
        assert cpu["stack"] == pytest.approx(sum(cpu[s] for s in SERVICES))
        assert set(level["rss_mib"]) == set(SERVICES)
        assert level["load_generator_cpu_ms_per_request"] > 0
    assert data["levels"][1]["clients"] == 8
    assert {"rps", "per_core", "cores"} <= set(data["capacity"])
    assert data["index"]["index_bytes"] is None
    assert {t["name"] for t in data["targets"]} >= {"p99 ms at 8 clients"}
    assert all(isinstance(t["passed"], bool) for t in data["targets"])


def test_index_figures_per_million_videos_or_null(tmp_path: Path) -> None:
    missing = index_figures(tmp_path)
    assert missing["index_build_s"] is None and missing["index_mib_per_million"] is None
    meta = {
        "videos": 250_000,
        "index_kind": "hnsw",
        "index_build_s": 30.0,
        "index_bytes": 64 * 2**20,
        "neighbours_build_s": 5.0,
        "neighbours_bytes": 2**20,
    }
    (tmp_path / "scale_meta.json").write_text(json.dumps(meta))
    found = index_figures(tmp_path)
    assert found["index_build_s"] == 30.0 and found["videos"] == 250_000
    assert found["index_build_s_per_million"] == pytest.approx(120.0)
    assert found["index_mib_per_million"] == pytest.approx(256.0)
    assert found["neighbours_build_s_per_million"] == pytest.approx(20.0)
    assert found["neighbours_mib_per_million"] == pytest.approx(4.0)
    assert found["index_kind"] == "hnsw"  # the rest of the file passes through


def test_default_levels_reach_from_one_client_past_eight() -> None:
    assert LEVELS[0] == 1 and 8 in LEVELS and max(LEVELS) >= 32


# -- per-stage CPU ---------------------------------------------------------------------------


def _burn(seconds: float) -> None:
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass


def test_cpu_observer_charges_each_stage_the_cpu_since_the_previous_report() -> None:
    obs = CPUObserver()
    for _ in range(2):  # two requests, one at a time
        obs.mark()
        _burn(0.02)
        obs.stage("home", "context/user_context", "control", 0.02, "ok")
        _burn(0.01)
        obs.stage("home", "source/a", "control", 0.01, "ok")
        _burn(0.03)
        obs.stage("home", "source/b", "control", 0.04, "ok")
        _burn(0.04)
        obs.stage("home", "scorer/ranker", "control", 0.04, "ok")
        obs.stage("home", "effect/impressions", "control", 0.0, "ok")
    found = stage_figures(obs, requests=2)
    stages = found["stages"]
    assert stages["context/user_context"]["cpu_ms"] == pytest.approx(20.0, abs=5.0)
    assert stages["scorer/ranker"]["cpu_ms"] == pytest.approx(40.0, abs=5.0)
    assert stages["source/a"]["cpu_ms"] is None  # concurrent: only their sum is reported
    assert found["sources_cpu_ms"] == pytest.approx(40.0, abs=8.0)
    assert found["cpu_ms_per_request"] == pytest.approx(100.0, abs=12.0)
    assert stages["scorer/ranker"]["p50_ms"] == pytest.approx(40.0)
    assert found["sum_p50_ms"] == pytest.approx(20.0 + 10.0 + 40.0 + 40.0)
    assert found["critical_path_p50_ms"] == pytest.approx(20.0 + 40.0 + 40.0)


# -- ports -----------------------------------------------------------------------------------


def test_ports_from_a_base_are_one_block_clear_of_the_defaults() -> None:
    ports = BenchPorts.from_base(20_000)
    block = ports.all()
    assert len(set(block)) == len(block) == BenchPorts.SPAN + 3  # + the cluster bus ports
    assert set(range(20_000, 20_000 + BenchPorts.SPAN)) <= set(block)
    assert {30_000, 30_001, 30_002} <= set(block)
    defaults = load_config({})
    assert defaults.serving.recommender_port not in block
    assert defaults.triton.grpc_port not in block
    with pytest.raises(ValueError, match="VIDREC_BENCH__BASE_PORT"):
        BenchPorts.from_base(60_000)  # its bus ports would pass 65535


def test_ports_come_from_the_environment_or_a_free_block() -> None:
    cfg = load_config({"VIDREC_BENCH__BASE_PORT": "21000"})
    assert BenchPorts.from_config(cfg.bench) == BenchPorts.from_base(21_000)
    free = BenchPorts.from_config(load_config({}).bench)
    assert all(map(port_free, free.all()))
    with socket.socket() as s:  # a port in use is not free
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not port_free(int(s.getsockname()[1]))
