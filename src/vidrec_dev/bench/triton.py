"""Triton's dynamic batching against none, proven by Triton's own statistics.

One ranker ONNX served by two Triton servers whose repositories differ only in
``dynamic_batching``; ``TRITON_CLIENTS`` concurrent closed-loop gRPC clients each, at the
pipeline's candidate batch and at a small batch. Both servers run side by side and the
measurement alternates between them in ``ROUNDS`` short windows (A B, B A, ...), so a
shared machine's load drifts over both alike. Each run reports its rows per second and, from
Triton's statistics API over the same windows, its requests, ``execution_count`` and
``inference_count``: the batcher merged requests exactly when executions < requests. Beside
throughput, the CPU each request cost Triton (server + python-backend stubs, process tree) and
the client: on a shared machine throughput also follows how much CPU the scheduler grants,
CPU per request does not. Part of `vidrec bench serving`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from vidrec.backends.ranker import TritonRankerClient
from vidrec.config import load_config
from vidrec.ranking.model_repository import (
    CONFIG_FILE,
    RANKER_MODEL,
    config_text,
    parse_config,
    write_model_repository,
)
from vidrec.ranking.triton_client import InferenceCounts, inference_counts
from vidrec.ranking.triton_process import (
    TritonPorts,
    TritonProcess,
    prepare_backend_dir,
    triton_command,
)
from vidrec_dev.bench.cpu import tree_usage

TRITON_CLIENTS = 16
SMALL_BATCH = 32
ROUNDS = 4
LABELS = ("batching", "no_batching")


def ranker_repository(demo: Path, dest: Path, batching: bool) -> Path:
    """The stack's ranker repository, with or without ``dynamic_batching``."""
    write_model_repository(dest, demo / "models" / "ranker.onnx", load_config().ranking)
    if not batching:
        path = dest / RANKER_MODEL / CONFIG_FILE
        config = parse_config(path)
        config.ClearField("dynamic_batching")
        path.write_text(config_text(config, int(config.input[0].dims[0])))
    return dest


async def triton_throughput(url: str, input_dim: int, rows: int, duration_s: float) -> int:
    """Requests answered in ``duration_s`` by ``TRITON_CLIENTS`` closed-loop clients."""
    # Imported here: vidrec_dev.bench.serving imports this module for bench_triton.
    from vidrec_dev.bench.serving import closed_loop

    client = TritonRankerClient(url, RANKER_MODEL, 5.0, lambda _variant: "")
    x = np.random.default_rng(3).standard_normal((rows, input_dim), dtype=np.float32)

    async def infer(_: random.Random) -> bool:
        await client.score(x, "control")  # the scores are not looked at
        return True

    try:
        latencies, _ = await closed_loop(infer, TRITON_CLIENTS, duration_s)
    finally:
        await client.close()
    return len(latencies)


@dataclass(frozen=True)
class Window:
    """What one or more measurement windows of a server cost and counted."""

    answered: int = 0
    counts: InferenceCounts = field(default_factory=InferenceCounts)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def __add__(self, other: Window) -> Window:
        return Window(
            self.answered + other.answered,
            self.counts + other.counts,
            self.server_cpu_s + other.server_cpu_s,
            self.client_cpu_s + other.client_cpu_s,
        )


def measure(server: TritonProcess, input_dim: int, rows: int, duration_s: float) -> Window:
    """One window: requests answered, Triton's counters and both sides' CPU over it."""
    url, pid = server.grpc_url, server.pid
    assert pid is not None, "measure: the server is not running"
    counts, server_cpu, client_cpu = (
        inference_counts(url, RANKER_MODEL),
        tree_usage(pid).cpu_s,
        time.process_time(),
    )
    answered = asyncio.run(triton_throughput(url, input_dim, rows, duration_s))
    return Window(
        answered,
        inference_counts(url, RANKER_MODEL) - counts,
        tree_usage(pid).cpu_s - server_cpu,
        time.process_time() - client_cpu,
    )


def bench_triton(
    demo: Path, work: Path, rows_large: int, duration_s: float, console: Console
) -> dict[str, float]:
    backend = prepare_backend_dir(work / "backends")
    out: dict[str, float] = {}
    with ExitStack() as stack:
        servers: dict[str, TritonProcess] = {}
        for label in LABELS:
            repo = ranker_repository(demo, work / f"repo_{label}", label == "batching")
            ports = TritonPorts.free()
            argv, env = triton_command(repo, ports, backend_dir=backend, models=[RANKER_MODEL])
            process = TritonProcess(argv, env, ports, work / f"triton_{label}.log")
            servers[label] = stack.enter_context(process.start(120))
        input_dim = int(parse_config(repo / RANKER_MODEL / CONFIG_FILE).input[0].dims[0])
        for rows in (rows_large, SMALL_BATCH):
            console.print(
                f"  Triton batching vs none, {TRITON_CLIENTS} clients × {rows} rows, "
                f"{ROUNDS} alternating rounds …"
            )
            for label in LABELS:  # warm-up: connections, the stubs' shared memory
                measure(servers[label], input_dim, rows, 1.0)
            runs = dict.fromkeys(LABELS, Window())
            for i in range(ROUNDS):
                for label in LABELS if i % 2 == 0 else LABELS[::-1]:
                    runs[label] += measure(servers[label], input_dim, rows, duration_s / ROUNDS)
            for label in LABELS:
                key, run, c = f"triton.{label}.b{rows}", runs[label], runs[label].counts
                out[f"{key}.inferences_per_s"] = run.answered * rows / duration_s
                answered = max(run.answered, 1)
                out[f"{key}.server_cpu_ms_per_request"] = run.server_cpu_s / answered * 1e3
                out[f"{key}.client_cpu_ms_per_request"] = run.client_cpu_s / answered * 1e3
                out[f"{key}.requests"] = float(c.requests)
                out[f"{key}.execution_count"] = float(c.execution_count)
                out[f"{key}.inference_count"] = float(c.inference_count)
                out[f"{key}.requests_per_execution"] = c.requests / max(c.execution_count, 1)
                out[f"{key}.largest_batch"] = float(c.largest_batch)
    for rows in (rows_large, SMALL_BATCH):
        on, off = (out[f"triton.{k}.b{rows}.inferences_per_s"] for k in LABELS)
        out[f"triton.b{rows}.batching_speedup"] = on / off
        # The throughput gain a dedicated machine saturated by Triton would see.
        on, off = (out[f"triton.{k}.b{rows}.server_cpu_ms_per_request"] for k in LABELS)
        out[f"triton.b{rows}.batching_server_cpu_saving"] = off / on if on else 0.0
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the Triton part alone: ``python -m vidrec_dev.bench.triton OUT_DIR``; writes
    ``OUT_DIR/triton.json`` (the keys `vidrec bench serving` puts in serving.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--artefacts", type=Path, default=load_config().serving.artefacts_dir,
                        help="artefact dir holding models/ranker.onnx")  # fmt: skip
    parser.add_argument("--rows", type=int, default=500, help="rows per request (candidates)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console()
    results = bench_triton(args.artefacts, args.out / "work", args.rows, args.duration, console)
    results["load_average_1m"] = os.getloadavg()[0]
    (args.out / "triton.json").write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        console.print(f"{key:55s} {value:12.3f}")


if __name__ == "__main__":
    main()
