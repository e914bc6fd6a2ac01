"""Triton's dynamic batching against none: one ranker ONNX served from two repositories that
differ only in ``dynamic_batching``, ``TRITON_CLIENTS`` concurrent gRPC clients each, at the
pipeline's candidate batch and at a small batch. Part of `vidrec bench serving`.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import numpy as np
from rich.console import Console

from vidrec.config import load_config
from vidrec.ranking.model_repository import (
    CONFIG_FILE,
    RANKER_MODEL,
    config_text,
    parse_config,
    write_model_repository,
)
from vidrec.ranking.triton_process import (
    TritonPorts,
    TritonProcess,
    prepare_backend_dir,
    triton_command,
)
from vidrec.serving.ranker import TritonRankerClient

TRITON_CLIENTS = 16
SMALL_BATCH = 32


def ranker_repository(demo: Path, dest: Path, batching: bool) -> Path:
    """The stack's ranker repository, with or without ``dynamic_batching``."""
    write_model_repository(dest, demo / "models" / "ranker.onnx", load_config().ranking)
    if not batching:
        path = dest / RANKER_MODEL / CONFIG_FILE
        config = parse_config(path)
        config.ClearField("dynamic_batching")
        path.write_text(config_text(config, int(config.input[0].dims[0])))
    return dest


async def triton_throughput(url: str, input_dim: int, rows: int, duration_s: float) -> float:
    """Inferences (rows) per second from ``TRITON_CLIENTS`` concurrent closed-loop clients."""
    # Imported here: vidrec.bench.serving imports this module for bench_triton.
    from vidrec.bench.serving import closed_loop

    client = TritonRankerClient(url, RANKER_MODEL, 5.0, lambda _variant: "")
    x = np.random.default_rng(3).standard_normal((rows, input_dim), dtype=np.float32)

    async def infer(_: random.Random) -> bool:
        await client.score(x, "control")
        return True

    try:
        await closed_loop(infer, TRITON_CLIENTS, 1.0)  # warm-up
        latencies, _ = await closed_loop(infer, TRITON_CLIENTS, duration_s)
    finally:
        await client.close()
    return len(latencies) * rows / duration_s


def bench_triton(
    demo: Path, work: Path, rows_large: int, duration_s: float, console: Console
) -> dict[str, float]:
    backend = prepare_backend_dir(work / "backends")
    out: dict[str, float] = {}
    for label, batching in (("batching", True), ("no_batching", False)):
        repo = ranker_repository(demo, work / f"repo_{label}", batching)
        input_dim = int(parse_config(repo / RANKER_MODEL / CONFIG_FILE).input[0].dims[0])
        ports = TritonPorts.free()
        argv, env = triton_command(repo, ports, backend_dir=backend, models=[RANKER_MODEL])
        with TritonProcess(argv, env, ports, work / f"triton_{label}.log").start(120):
            for rows in (rows_large, SMALL_BATCH):
                console.print(f"  Triton {label}, {TRITON_CLIENTS} clients × {rows} rows …")
                rate = asyncio.run(
                    triton_throughput(f"127.0.0.1:{ports.grpc}", input_dim, rows, duration_s)
                )
                out[f"triton.{label}.b{rows}.inferences_per_s"] = rate
    for rows in (rows_large, SMALL_BATCH):
        on, off = (out[f"triton.{k}.b{rows}.inferences_per_s"] for k in ("batching", "no_batching"))
        out[f"triton.b{rows}.batching_speedup"] = on / off
    return out
