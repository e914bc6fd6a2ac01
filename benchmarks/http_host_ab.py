"""Same-run A/B of the recommender's HTTP host: BentoML's Recommender against the lean host.

One stack (Redis Cluster, Triton, Retrieval, Features as ``vidrec bench serving`` starts them);
only the recommender is swapped between rounds, alternating which host goes first:
``bentoml`` (the Starlette app mounted in the BentoML service, behind its middlewares) and
``uvicorn`` (``vidrec.api.http_server``: the same app and service, nothing around it). Each
round drives the home feed with closed-loop clients and records, per host and level, CPU ms
per request of every service's process tree, req/s, p50/p99 and the degraded share.

    .venv/bin/python benchmarks/http_host_ab.py --artefacts runs/bench-1m/scale-1000000 \\
        --out runs/ab-host --rounds 3 --clients 1,8 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import statistics
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from vidrec.config import Config
from vidrec_dev.bench.cpu import ProcessTreeCPU, cpu_seconds
from vidrec_dev.bench.scale_artefacts import CATALOG_DIR
from vidrec_dev.bench.serving import (
    STACK_SERVICES,
    BenchPorts,
    bench_config,
    closed_loop,
    known_users,
    scale_data_up,
    service_roots,
)
from vidrec_dev.stack import Stack

HOSTS = ("bentoml", "uvicorn")


def with_host(cfg: Config, host: str) -> Config:
    return dataclasses.replace(cfg, serving=dataclasses.replace(cfg.serving, http_host=host))


async def level(stack: Stack, url: str, users: list[int], clients: int, seconds: float,
                ) -> dict[str, Any]:  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as http:

        async def home(rng: random.Random) -> bool:
            r = await http.get(url, params={"user_id": rng.choice(users), "count": 20})
            return r.status_code == 200 and not r.json()["degraded"]

        for _ in range(30):  # past the first requests of a fresh process
            await home(random.Random(0))
        meter = ProcessTreeCPU(service_roots(stack))
        before = meter.sample()
        latencies, bad = await closed_loop(home, clients, seconds)
        spent = cpu_seconds(before, meter.sample())
    n = max(len(latencies), 1)
    cpu = {k: round(v * 1000 / n, 2) for k, v in spent.items()}
    cpu["stack"] = round(sum(cpu.values()), 2)
    ordered = sorted(latencies) or [0.0]
    return {
        "clients": clients,
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
        "degraded_ratio": round(bad / n, 4),
        "cpu_ms_per_request": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--artefacts", type=Path, required=True,
        help="An artefact directory: a scale catalogue `vidrec bench serving` built, or a "
        "pipeline run's (e.g. artifacts/demo).",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("runs/ab-host"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,8", help="Comma-separated levels.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Per level.")
    args = parser.parse_args()
    scale, out = args.artefacts.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    cfg = bench_config(out / "run", scale, BenchPorts.free())
    stack = Stack(cfg, scale, console)
    levels = [int(c) for c in args.clients.split(",")]
    rows: list[dict[str, Any]] = []
    try:
        if (scale / CATALOG_DIR).is_dir():  # a scale catalogue: its vectors, as the bench does
            scale_data_up(stack, scale)[1].close()
        else:
            stack.up(only={"redis", "prepare"}, progress=False)
        stack.up(only=STACK_SERVICES - {"recommender"}, progress=False)
        users = known_users(scale)
        url = f"http://127.0.0.1:{cfg.serving.recommender_port}/api/v1/recommendations/home"
        for r in range(args.rounds):
            for host in HOSTS if r % 2 == 0 else HOSTS[::-1]:
                hosted = Stack(with_host(cfg, host), scale, console)
                hosted.up(only=STACK_SERVICES, progress=False)
                for clients in levels:
                    row = asyncio.run(level(hosted, url, users, clients, args.seconds))
                    rows.append({"round": r, "host": host, **row})
                    console.print(rows[-1])
                hosted.stop("recommender")
    finally:
        stack.down()
    result = {
        "command": "benchmarks/http_host_ab.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "load_average_end": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rows": rows,
    }
    (out / "http_host_ab.json").write_text(json.dumps(result, indent=1) + "\n")
    summary = Table(title="median over rounds: recommender / stack CPU ms per request, p99")
    for col in ("host", "clients", "recommender", "stack", "p99 ms", "degraded"):
        summary.add_column(col)
    for host in HOSTS:
        for clients in levels:
            mine = [x for x in rows if x["host"] == host and x["clients"] == clients]

            def med(f: Any, mine: list[dict[str, Any]] = mine) -> float:
                return statistics.median(f(x) for x in mine)

            summary.add_row(host, str(clients),
                            f"{med(lambda x: x['cpu_ms_per_request']['recommender']):.1f}",
                            f"{med(lambda x: x['cpu_ms_per_request']['stack']):.1f}",
                            f"{med(lambda x: x['p99_ms']):.0f}",
                            f"{med(lambda x: x['degraded_ratio']):.1%}")  # fmt: skip
    console.print(summary)


if __name__ == "__main__":
    main()
