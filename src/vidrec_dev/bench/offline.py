"""`vidrec bench offline`: the offline pipeline's performance figures, each with its baseline.

Every figure is a ratio against something measured in the same run on the same machine:
- simulator: events/s, and headroom against the budget (10M events in 10 minutes);
- point-in-time features: examples/s on a demo-sized log;
- ANN retrieval on a synthetic catalogue: HNSW queries/s ÷ exact (flat) search, and recall@500;
- ranker: INT8 ÷ FP32 CPU latency at batch 500, and the AUC change.
Results go to ``OUT/offline.json`` and ``OUT/ann_tradeoff.png``; the table is printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rich.console import Console
from rich.table import Table

from vidrec.config import load_config
from vidrec.data import SimConfig, load_catalog, scale_catalog, schedule_uploads, simulate
from vidrec.data.simulator import benchmark_simulator
from vidrec.features import build_training_tables
from vidrec.retrieval import AnnIndex, IndexParams, build_index, exact_index, recall_at_k

T = TypeVar("T")
SIM_BUDGET_EVENTS_PER_S = 10_000_000 / 600


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_simulator(n_events: int) -> dict[str, float]:
    result = benchmark_simulator(n_events, load_catalog(load_config().data.kuairec_dir))
    rate = result.events_per_second
    return {
        "simulator.events": float(result.n_events),
        "simulator.seconds": result.seconds,
        "simulator.events_per_s": rate,
        "simulator.headroom_vs_budget": rate / SIM_BUDGET_EVENTS_PER_S,
    }


def bench_features(days: int = 14) -> dict[str, float]:
    cfg = load_config()
    catalog = load_catalog(cfg.data.kuairec_dir)
    sim = SimConfig(days=days, sessions_per_user_per_day=1.0)
    events = simulate(catalog, sim)
    videos = schedule_uploads(catalog, sim).videos
    tables, seconds = _timed(
        lambda: build_training_tables(events, videos, catalog.users, cfg.features)
    )
    rows = tables.ranker.height + tables.retrieval.height
    return {
        "features.events": float(events.height),
        "features.examples": float(rows),
        "features.seconds": seconds,
        "features.examples_per_s": rows / seconds,
    }


def _tuned(index: AnnIndex, knob: str, value: int) -> AnnIndex:
    """The same built index searched with another efSearch / nprobe."""
    if knob == "ef_search":
        return replace(index, params=replace(index.params, ef_search=value))
    return replace(index, params=replace(index.params, nprobe=value))


def bench_ann(n_videos: int, n_queries: int, out: Path) -> dict[str, float]:
    """HNSW (several efSearch) and IVF-PQ (several nprobe) against exact search, same queries."""
    catalog = scale_catalog(n_videos, progress=True)
    rng = np.random.default_rng(0)
    pick = rng.choice(n_videos, size=n_queries, replace=False)
    queries = catalog.embeddings[pick] + 0.3 * rng.standard_normal((n_queries, 32), np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = exact_index(catalog.embeddings, catalog.video_ids)
    _, exact_s = _timed(lambda: exact.search(queries, 500))
    results = {"ann.videos": float(n_videos), "ann.exact_qps": n_queries / exact_s}
    sweeps = {
        "hnsw": ("ef_search", (500, 1024, 2048)),
        "ivfpq": ("nprobe", (32, 128)),
    }
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, (knob, values) in sweeps.items():
        params = IndexParams(kind=kind)  # type: ignore[arg-type]
        index, build_s = _timed(
            partial(build_index, catalog.embeddings, catalog.video_ids, params, progress=True)
        )
        results[f"ann.{kind}.build_s"] = build_s
        points = []
        for value in values:
            tuned = _tuned(index, knob, value)
            _, ann_s = _timed(partial(tuned.search, queries, 500))
            recall = recall_at_k(tuned, exact, queries, k=500)
            points.append((value, recall, exact_s / ann_s))
            results[f"ann.{kind}.{knob}={value}.recall@500"] = recall
            results[f"ann.{kind}.{knob}={value}.speedup_vs_exact"] = exact_s / ann_s
        ax.plot([p[2] for p in points], [p[1] for p in points], marker="o", label=kind)
        for value, recall, speed in points:
            ax.annotate(f"{knob}={value}", (speed, recall), fontsize=8)
    ax.set_xlabel("speed-up over exact search, batch of queries (×)")
    ax.set_ylabel("recall@500")
    ax.set_title(f"ANN on {n_videos:,} synthetic videos, {n_queries} queries")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ann_tradeoff.png", dpi=120)
    plt.close(fig)
    return results


def run(out: Path, sim_events: int, ann_videos: int) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    results: dict[str, float] = {}
    for name, fn in (
        ("simulator", lambda: bench_simulator(sim_events)),
        ("point-in-time features", bench_features),
        ("ANN retrieval", lambda: bench_ann(ann_videos, 1000, out)),
    ):
        console.print(f"[bold cyan]▶[/] {name}")
        results |= fn()
    (out / "offline.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title="offline benchmarks", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:,.3f}" if value < 100 else f"{value:,.0f}")
    console.print(table)
    return results
