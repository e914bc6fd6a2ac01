"""``vidrec bench offline|serving|recall|events``: benchmarks as ratios to same-run baselines.

Thin adapters: each command imports its benchmark module lazily, so ``vidrec --help`` stays
instant. ``capacity`` and ``soak`` join this app from :mod:`vidrec_dev.loadtest.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidrec.cli_support import friendly
from vidrec.errors import InputError

bench_app = typer.Typer(help="Benchmarks, as ratios to same-run baselines.", no_args_is_help=True)


@bench_app.command("offline")
@friendly
def bench_offline(
    out: Annotated[Path, typer.Option(help="Where results and plots go.")] = Path("runs/bench"),
    sim_events: Annotated[int, typer.Option(help="Events for the simulator run.")] = 10_000_000,
    ann_videos: Annotated[int, typer.Option(help="Synthetic catalogue size for ANN.")] = 1_000_000,
) -> None:
    """Simulator throughput, feature build rate, HNSW vs exact search, INT8 vs FP32 ranker."""
    from vidrec_dev.bench.offline import run

    run(out, sim_events, ann_videos)


SERVING_HELP = (
    "What a home feed costs: CPU ms per request of every service, latency and capacity.\n\n"
    "Builds (first run only: ≈20 min at 1M on 2 cores, HNSW index + item-item lists) "
    "a catalogue of VIDEOS synthetic videos over the demo models (`make demo` first), "
    "starts a stack of its own (ports from "
    "VIDREC_BENCH__BASE_PORT, else a free block, so it runs beside `make up`) and drives the "
    "home feed over HTTP with closed-loop clients, one load level after another (LEVELS), "
    "DURATION seconds each.\n\n"
    "Per level: p50/p99, req/s, the degraded share, the CPU ms per request of each "
    "service's whole process tree (recommender, triton, redis, ...) and their sum (stack), "
    "the load generator's own share, RSS per service. Then, on the same stack: CPU and p50 "
    "per pipeline stage (in-process), the components alone (user tower, ANN k=400, ranker "
    "ONNX Runtime, a standalone Redis MGET of 500 keys), hydration against that MGET and "
    "Feast, Triton dynamic batching against none, the index size and build time per million "
    "videos.\n\n"
    "Writes OUT/serving.json (levels: clients, p50_ms, p99_ms, degraded_ratio, rps, "
    "cpu_ms_per_request with one key per service and stack; capacity, components, index, "
    "stages, targets) and OUT/serving_latency.png, and prints the tables and the PASS/MISS "
    "targets (≈10 min at 1M videos, 20 s per level)."
)


@bench_app.command("serving", help=SERVING_HELP)
@friendly
def bench_serving(
    out: Annotated[
        Path, typer.Option(help="Results, plots and the cached scale catalogue.")
    ] = Path("runs/bench"),
    videos: Annotated[int, typer.Option(help="Synthetic catalogue size.")] = 1_000_000,
    candidates: Annotated[int, typer.Option(help="Candidates ranked per request.")] = 500,
    levels: Annotated[
        str,
        typer.Option(help="Load levels: closed-loop HTTP clients, a comma list, e.g. 1,8,32."),
    ] = "1,2,4,8,16,32",
    duration: Annotated[float, typer.Option(help="Seconds of load per level.")] = 20.0,
    http_host: Annotated[
        str,
        typer.Option(help="Who serves the recommender's HTTP API: bentoml or uvicorn (lean)."),
    ] = "",
) -> None:
    """What a home feed costs: CPU ms per request of every service, latency, capacity."""
    from vidrec_dev.bench.serving import run

    try:
        clients = [int(c) for c in levels.split(",") if c.strip()]
    except ValueError as exc:
        raise InputError(f"--levels {levels!r}: expected a comma list of integers") from exc
    if not clients or min(clients) < 1:
        raise InputError(f"--levels {levels!r}: expected one or more client counts >= 1")
    if http_host not in ("", "bentoml", "uvicorn"):
        raise InputError(f"--http-host {http_host!r}: expected bentoml or uvicorn")
    run(out, n_videos=videos, candidates=candidates, duration_s=duration, levels=clients,
        http_host=http_host)  # fmt: skip


@bench_app.command("recall")
@friendly
def bench_recall(
    artefacts: Annotated[
        Path, typer.Option(help="An artefact dir from `vidrec pipeline run`.")
    ] = Path("artifacts/demo"),
    out: Annotated[Path, typer.Option(help="Where recall.json goes.")] = Path("runs/bench"),
) -> None:
    """Recall@K of every retrieval source (two-tower, item-item by index search and by
    precomputed lists, trending, fresh, same creator) on the held-out last day, in-process
    as serving runs them (≈4 min on the demo, most of it rebuilding the features)."""
    from vidrec_dev.bench.recall import run

    run(artefacts, out)


@bench_app.command("events")
@friendly
def bench_events(
    out: Annotated[Path, typer.Option(help="Where results and plots go.")] = Path("runs/bench"),
    duration: Annotated[float, typer.Option(help="Seconds of batched load.")] = 20.0,
    batch: Annotated[int, typer.Option(help="Events per POST (≤ 1000).")] = 100,
    clients: Annotated[int, typer.Option(help="Concurrent closed-loop clients.")] = 8,
) -> None:
    """Engagement intake events/s and p50/p99 on the real stack, event-to-feature lag from
    the processor's histogram and session probes, accepted == processed (≈3 min)."""
    from vidrec_dev.bench.events import run

    run(out, duration_s=duration, batch=batch, clients=clients)
