"""Profile the recommender worker under HTTP load at bench scale: where its CPU goes.

Starts the same stack as ``vidrec bench serving`` over a scale catalogue it already built
(``--scale``, e.g. ``runs/bench-1m/scale-1000000``), drives the home feed with one
closed-loop client, prints each service's CPU ms per request for a plain window and for a
window under ``py-spy record`` (raw collapsed stacks, one line per stack, ``--threads``), and
summarises the event-loop thread: pipeline against the HTTP layer around it.

    .venv/bin/python benchmarks/profile_recommender.py --scale runs/bench-1m/scale-1000000 \\
        --out runs/prof-1m --seconds 25
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import re
import subprocess
from collections import Counter
from pathlib import Path

import httpx
from rich.console import Console

from vidrec_dev.bench.cpu import ProcessTreeCPU, cpu_seconds, process_table, tree_pids
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

CATEGORIES = (  # first match wins, on the event-loop thread's stacks
    ("waiting in epoll", ("EpollSelector.select",)),
    ("pipeline (runner, stages, effects)", ("PipelineRunner",)),
    ("grpc.aio callbacks (ranker client)", ("grpc",)),
    (
        "HTTP: BentoML middlewares (access log, OpenTelemetry, metrics) and the response send",
        ("bentoml/_internal/server", "opentelemetry", "asgi/__init__"),
    ),
    ("HTTP: uvicorn h11 + socket I/O", ("h11",)),
)


def python_thread_names(pid: int) -> dict[str, str]:
    """Native thread id → Python thread name (``py-spy dump``): the OS calls them all python."""
    dump = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True)
    found = re.findall(r'^Thread (\d+) \(\w+\): "([^"]*)"', dump.stdout, re.MULTILINE)
    return dict(found)


def thread_times(pid: int, names: dict[str, str]) -> dict[tuple[str, str], float]:
    """CPU seconds of each thread of ``pid`` by thread name, user and system apart (threads
    of one name, e.g. the executor's ``asyncio_<n>``, summed under ``asyncio``)."""
    out: dict[tuple[str, str], float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = names.get(task.name) or (task / "comm").read_text().strip()
            name = comm.rstrip("0123456789").rstrip("_-")
            raw = (task / "stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        for kind, ticks in (("user", int(f[11])), ("sys", int(f[12]))):
            out[(name, kind)] = out.get((name, kind), 0.0) + ticks / os.sysconf("SC_CLK_TCK")
    return out


def loop_thread_shares(raw: Path) -> dict[str, float]:
    """Share of the main thread's samples per category, epoll wait left out of the total."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        if "MainThread" not in stack.split(";", 1)[0]:
            continue
        name = next(
            (c for c, markers in CATEGORIES if any(m in stack for m in markers)),
            "HTTP: Starlette routing, the API service, other",
        )
        counts[name] += int(n)
    busy = sum(v for k, v in counts.items() if k != "waiting in epoll") or 1
    return {k: round(v / busy, 3) for k, v in counts.most_common() if k != "waiting in epoll"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=Path, required=True, help="A built scale catalogue.")
    parser.add_argument("--out", type=Path, default=Path("runs/prof"))
    parser.add_argument("--seconds", type=float, default=25.0, help="Per window.")
    parser.add_argument("--py-spy", default="",
                        help="more py-spy flags: '--native' (C frames), '--gil'")  # fmt: skip
    parser.add_argument("--http-host", default="uvicorn", choices=("bentoml", "uvicorn"),
                        help="Who serves the recommender's HTTP API.")  # fmt: skip
    args = parser.parse_args()
    scale, out = args.scale.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    cfg = bench_config(out / "run", scale, BenchPorts.free())
    cfg = dataclasses.replace(
        cfg, serving=dataclasses.replace(cfg.serving, http_host=args.http_host)
    )
    stack = Stack(cfg, scale, console)
    try:
        scale_data_up(stack, scale)[1].close()
        stack.up(only=STACK_SERVICES, progress=False)
        roots = service_roots(stack)
        users = known_users(scale)
        url = f"http://127.0.0.1:{cfg.serving.recommender_port}/api/v1/recommendations/home"

        table0 = process_table()
        worker = max(tree_pids(roots["recommender"], table0),
                     key=lambda p: table0[p].utime + table0[p].stime)  # fmt: skip
        names = python_thread_names(worker)

        async def window(spy: list[str] | None) -> dict[str, object]:
            async with httpx.AsyncClient(timeout=10) as http:

                async def home(rng: random.Random) -> bool:
                    r = await http.get(url, params={"user_id": rng.choice(users), "count": 20})
                    return r.status_code == 200 and not r.json()["degraded"]

                for _ in range(50):
                    await home(random.Random(0))
                meter = ProcessTreeCPU(roots)
                before, threads0 = meter.sample(), thread_times(worker, names)
                proc = subprocess.Popen(spy) if spy else None
                latencies, bad = await closed_loop(home, 1, args.seconds)
                spent = cpu_seconds(before, meter.sample())
                threads = thread_times(worker, names)
                if proc is not None:
                    proc.wait()
                n = max(len(latencies), 1)
                return {
                    "requests": len(latencies),
                    "degraded": bad,
                    "cpu_ms_per_request": {k: round(v * 1000 / n, 2) for k, v in spent.items()},
                    "recommender_threads_ms_per_request": {
                        f"{name} {kind}": round((t - threads0.get((name, kind), 0.0)) * 1000 / n, 2)
                        for (name, kind), t in sorted(threads.items())
                        if t - threads0.get((name, kind), 0.0) > 0
                    },
                }

        plain = asyncio.run(window(None))
        console.print("plain window", plain)
        raw = out / "worker.txt"
        spy = [
            *("py-spy", "record", "-p", str(worker), "-d", str(int(args.seconds))),
            *("-r", "200", "-f", "raw", "-o", str(raw), "--threads"),
            *args.py_spy.split(),
        ]
        profiled = asyncio.run(window(spy))
        shares = loop_thread_shares(raw)
        console.print("profiled window", profiled)
        console.print("event-loop thread, share of busy samples", shares)
        result = {"plain": plain, "profiled": profiled, "loop_thread_shares": shares}
        (out / "profile.json").write_text(json.dumps(result, indent=1) + "\n")
    finally:
        stack.down()


if __name__ == "__main__":
    main()
