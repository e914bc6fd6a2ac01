"""Client CPU per ranker request: vidrec's wire-bytes client against tritonclient's ``infer``.

Starts a real local tritonserver (the nvidia-pytriton wheel) over a repository holding
ONNX (``--onnx``, default: the demo's ``models/ranker.onnx``), then alternates the two clients
on the same server, ``--calls`` sequential requests of ``--rows`` rows per round:
``TritonRankerClient`` (asyncio, the request path) and ``TritonRanker`` (blocking) against
tritonclient's ``InferenceServerClient.infer`` with ``InferInput.set_data_from_numpy`` (what
both did before). The figure is ``time.process_time()`` of this process (every thread, gRPC's
included) per request; the server's CPU is not in it.
Run: `.venv/bin/python benchmarks/triton_client_cpu.py [--onnx PATH] [--rows 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from vidrec.backends.ranker import TritonRankerClient
from vidrec.config import RankingConfig, load_config
from vidrec.ranking.model_repository import RANKER_MODEL, write_model_repository
from vidrec.ranking.sessions import ranker_input_width
from vidrec.ranking.signature import RANKER_INPUT, RANKER_OUTPUT
from vidrec.ranking.triton_client import TritonRanker
from vidrec.ranking.triton_process import (
    TritonPorts,
    TritonProcess,
    prepare_backend_dir,
    triton_command,
)


def cpu_ms(call: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e3


async def cpu_ms_async(call: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - start) / calls * 1e3


def tritonclient_input(x: np.ndarray) -> list[grpcclient.InferInput]:
    infer_input = grpcclient.InferInput(RANKER_INPUT, list(x.shape), "FP32")
    infer_input.set_data_from_numpy(np.ascontiguousarray(x))
    return [infer_input]


async def async_round(url: str, x: np.ndarray, calls: int) -> tuple[float, float]:
    ours = TritonRankerClient(url, RANKER_MODEL, 5.0, lambda _variant: "")
    theirs = grpcaio.InferenceServerClient(url)
    outputs = [grpcclient.InferRequestedOutput(RANKER_OUTPUT)]

    async def tritonclient_call() -> np.ndarray:
        result = await theirs.infer(RANKER_MODEL, tritonclient_input(x), outputs=outputs)
        return result.as_numpy(RANKER_OUTPUT)

    async def vidrec_call() -> np.ndarray:
        return await ours.score(x, "control")

    try:
        assert np.array_equal(await vidrec_call(), await tritonclient_call())
        for call in (vidrec_call, tritonclient_call):  # warm both
            await cpu_ms_async(call, 20)
        return await cpu_ms_async(vidrec_call, calls), await cpu_ms_async(tritonclient_call, calls)
    finally:
        await ours.close()
        await theirs.close()


def sync_round(url: str, x: np.ndarray, calls: int) -> tuple[float, float]:
    theirs = grpcclient.InferenceServerClient(url)
    outputs = [grpcclient.InferRequestedOutput(RANKER_OUTPUT)]
    with TritonRanker(url, timeout_s=5.0) as ours:
        calls_by = {
            "vidrec": lambda: ours.score(x),
            "tritonclient": lambda: theirs.infer(
                RANKER_MODEL, tritonclient_input(x), outputs=outputs
            ).as_numpy(RANKER_OUTPUT),
        }
        for call in calls_by.values():
            cpu_ms(call, 20)
        result = cpu_ms(calls_by["vidrec"], calls), cpu_ms(calls_by["tritonclient"], calls)
    theirs.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default_onnx = load_config().serving.artefacts_dir / "models" / "ranker.onnx"
    parser.add_argument("--onnx", type=Path, default=default_onnx)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidrec-client-cpu-"))
    repo = write_model_repository(work / "repo", args.onnx, RankingConfig())
    ports = TritonPorts.free()
    argv, env = triton_command(repo, ports, backend_dir=prepare_backend_dir(work / "backends"))
    rows: dict[str, list[float]] = {}
    with TritonProcess(argv, env, ports, work / "tritonserver.log").start(120) as server:
        width = ranker_input_width(args.onnx)
        x = np.random.default_rng(0).standard_normal((args.rows, width), dtype=np.float32)
        for _ in range(args.rounds):
            ours, theirs = asyncio.run(async_round(server.grpc_url, x, args.calls))
            rows.setdefault("asyncio: vidrec", []).append(ours)
            rows.setdefault("asyncio: tritonclient infer", []).append(theirs)
            ours, theirs = sync_round(server.grpc_url, x, args.calls)
            rows.setdefault("blocking: vidrec", []).append(ours)
            rows.setdefault("blocking: tritonclient infer", []).append(theirs)
    print(f"client CPU per {args.rows}-row request (ms, median of {args.rounds} rounds):")
    for name, values in rows.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name:30s} {statistics.median(values):6.3f}   rounds: {each}")


if __name__ == "__main__":
    main()
