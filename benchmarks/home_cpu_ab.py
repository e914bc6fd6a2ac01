"""CPU per home request of the serving pipeline, this checkout against a baseline checkout.

Both run the same in-process request loop (``build_api`` + ``RecommendationService.home``, the
code behind the HTTP and gRPC adapters) over the same artefacts, Redis and Triton, alternated
``--rounds`` times so machine load hits both alike. CPU is the process's utime + stime
(``time.process_time``: every thread, background work included) per request served.

    git worktree add /tmp/vidrec-base <commit>
    vidrec stack up --only redis,prepare,triton --artefacts artifacts/demo   # any ports
    .venv/bin/python benchmarks/home_cpu_ab.py --baseline-src /tmp/vidrec-base/src \\
        --artefacts artifacts/demo --requests 400 --rounds 3 --out docs/results/home_cpu_ab.json

Settings (Redis URL, Triton ports, ...) come from the usual ``VIDREC_*`` environment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parents[1]

LOOP = r"""
import asyncio, json, os, random, sys, time
import polars as pl
from vidrec.config import load_config
from vidrec.schema import HomeQuery
from vidrec.api.compose import build_api

n, warm = int(sys.argv[1]), 50
cfg = load_config()
api = build_api(cfg)
events = pl.read_parquet(f"{cfg.serving.artefacts_dir}/data/events.parquet", columns=["user_id"])
users = events["user_id"].unique().sort().to_list()

async def main() -> None:
    rng = random.Random(0)
    for _ in range(warm):
        await api.service.home(HomeQuery(user_id=rng.choice(users), count=20))
    degraded = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        r = await api.service.home(HomeQuery(user_id=rng.choice(users), count=20))
        degraded += r.degraded
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"cpu_ms": 1000 * cpu / n, "wall_ms": 1000 * wall / n,
                      "degraded": degraded, "requests": n}))

asyncio.run(main())
sys.stdout.flush()
os._exit(0)
"""


def one_run(src: Path, artefacts: Path, requests: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src), "VIDREC_SERVING__ARTEFACTS_DIR": str(artefacts)}
    done = subprocess.run(
        [sys.executable, "-c", LOOP, str(requests)],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"run with {src} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, required=True,
                        help="the src/ folder of a checkout of the baseline commit")  # fmt: skip
    parser.add_argument("--artefacts", type=Path, required=True, help="artefact dir to serve")
    parser.add_argument("--requests", type=int, default=400, help="home requests per run")
    parser.add_argument("--rounds", type=int, default=3, help="baseline/current alternations")
    parser.add_argument("--out", type=Path, help="write the runs and medians here (JSON)")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
    srcs = {"baseline": args.baseline_src.resolve(), "current": HERE / "src"}
    for r in range(args.rounds):
        for name, src in srcs.items():
            runs[name].append(one_run(src, args.artefacts.resolve(), args.requests))
            print(f"round {r + 1} {name:8s} {runs[name][-1]}", flush=True)
    med = {name: median(x["cpu_ms"] for x in rs) for name, rs in runs.items()}
    summary = {
        "cpu_ms_per_request": med,
        "ratio_current_vs_baseline": med["current"] / med["baseline"],
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
