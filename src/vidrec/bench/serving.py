"""`vidrec bench serving`: the online path at catalogue scale, every figure against a baseline.

One run, one machine, one scale artefact dir (:mod:`vidrec.bench.scale_artefacts`):
- home feed over HTTP through the real BentoML Recommender started by the real stack runner
  (own ports and run dir), closed-loop httpx clients at 1, 8 and 32 concurrency;
- the per-stage breakdown, measured in-process (``build_api`` on the same stack, its runner
  observed by a :class:`RecordingObserver`): the compute the HTTP figure is compared with;
- hydrating 500 candidates (``FeatureFetcher``, cold and warm LRU, on the stack's Redis
  Cluster) against a raw MGET of the same keys on a standalone Redis, and against Feast's
  ``get_online_features`` for the same vectors on that Redis (its own venv, a subprocess);
- Triton with and without dynamic batching (two repositories of one ranker ONNX), 16
  concurrent gRPC clients, at the pipeline's candidate batch and at a small batch.
Results go to ``OUT/serving.json`` and ``OUT/serving_latency.png``; the table is printed.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from time import perf_counter

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from vidrec.bench.scale_artefacts import (
    load_scale_catalog,
    write_scale_artefacts,
    write_scale_vectors,
    write_serving_table,
)
from vidrec.bench.triton import SMALL_BATCH, bench_triton
from vidrec.config import REPO_ROOT, Config, load_config
from vidrec.features import VIDEO_SPEC, FeatureSpec, make_store, unpack_many, user_spec
from vidrec.features.stores import VIDEO_ENTITY, OnlineStore, RedisStore, keys_for
from vidrec.offline.manifest import read_manifest
from vidrec.pipeline.observer import RecordingObserver
from vidrec.pipeline.runner import PipelineRunner
from vidrec.ranking.triton_process import TritonPorts
from vidrec.schema import HomeQuery
from vidrec.serving.api.compose import build_api
from vidrec.serving.features import FeatureFetcher
from vidrec.serving.state import CLOCK_FILE, SERVING_DIR, static_dim_of
from vidrec.stack.process import ManagedProcess
from vidrec.stack.runner import Stack
from vidrec.stack.services import redis_spec, redis_url

CLIENTS = (1, 8, 32)
HYDRATE_REPS = 200
FEAST_POOL = 10_000  # ids written to the standalone Redis (vidrec layout and Feast's)
FEAST_REPEATS = 50
BREAKDOWN_REQUESTS = 200
WARMUP_REQUESTS = 20
FEED_COUNT = 20
STACK_SERVICES = {"redis", "prepare", "triton", "retrieval", "features", "recommender"}


@dataclass(frozen=True)
class BenchPorts:
    """A bench's own stack, on ports clear of `make up` (7001-7003, 8000-8002, 3000-3002, ...)
    and of the other benches, so a bench can run beside a developer's stack."""

    redis: int  # cluster masters redis..redis+2 (+ bus ports +10000)
    triton: TritonPorts
    recommender: int
    retrieval: int
    features: int
    grpc: int
    grpc_metrics: int
    prometheus: int


PORTS = BenchPorts(17101, TritonPorts(http=18100, grpc=18101, metrics=18102),
                   13100, 13101, 13102, 15151, 19564, 19190)  # fmt: skip
STANDALONE_REDIS_PORT = 17201
TRITON_PORTS = PORTS.triton
LIMITS = {"e2e_vs_stages": 1.5, "hydrate_vs_mget": 2.0, "feast_speedup": 3.0}
LIMITS |= {"batching_speedup": 1.5, "p99_8_ms": 50.0}


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``seconds``, in ms (NaN when nothing was measured)."""
    return float(np.percentile(np.asarray(seconds) * 1000, q)) if len(seconds) else float("nan")


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    limit: float
    at_most: bool  # True: value <= limit passes; False: value >= limit passes

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def row(self) -> tuple[str, str, str, str]:
        sign = "≤" if self.at_most else "≥"
        verdict = "[green]PASS[/]" if self.passed else "[red]MISS[/]"
        return self.name, f"{self.value:,.2f}", f"{sign} {self.limit:g}", verdict


def bench_config(run_dir: Path, artefacts_dir: Path, ports: BenchPorts = PORTS) -> Config:
    """The default config moved to a bench's own ports, run dir and artefacts."""
    base = load_config()
    t = ports.triton
    cfg = replace(
        base,
        stack=replace(
            base.stack,
            run_dir=run_dir,
            redis_cluster=True,
            redis_base_port=ports.redis,
            prometheus_port=ports.prometheus,
        ),
        triton=replace(base.triton, http_port=t.http, grpc_port=t.grpc, metrics_port=t.metrics),
        serving=replace(
            base.serving,
            artefacts_dir=artefacts_dir,
            retrieval_url=f"http://127.0.0.1:{ports.retrieval}",
            features_url=f"http://127.0.0.1:{ports.features}",
            recommender_port=ports.recommender,
            retrieval_port=ports.retrieval,
            features_port=ports.features,
            grpc_port=ports.grpc,
            grpc_metrics_port=ports.grpc_metrics,
        ),
    )
    return replace(cfg, redis=replace(base.redis, url=redis_url(cfg), cluster=True))


def known_users(scale_dir: Path, n: int = 2_000, seed: int = 0) -> list[int]:
    """Users of the artefact's log: they have a vector and a session in the store."""
    users = pl.scan_parquet(scale_dir / "data" / "events.parquet").select("user_id").unique()
    ids = users.collect()["user_id"].to_numpy()
    rng = np.random.default_rng(seed)
    return [int(u) for u in rng.choice(ids, size=min(n, ids.size), replace=False)]


async def closed_loop(
    call: Callable[[random.Random], Awaitable[bool]], clients: int, duration_s: float
) -> tuple[list[float], int]:
    """``clients`` workers calling ``call`` back to back for ``duration_s``: (latencies, bad).

    ``call`` returns False for a failed or degraded answer (counted, latency still kept).
    """
    latencies: list[float] = []
    bad = 0
    deadline = perf_counter() + duration_s

    async def worker(seed: int) -> None:
        nonlocal bad
        rng = random.Random(seed)
        while perf_counter() < deadline:
            start = perf_counter()
            ok = await call(rng)
            latencies.append(perf_counter() - start)
            bad += not ok

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return latencies, bad


async def bench_http(
    cfg: Config, users: list[int], duration_s: float, console: Console
) -> dict[str, float]:
    url = f"http://127.0.0.1:{cfg.serving.recommender_port}/api/v1/recommendations/home"
    results: dict[str, float] = {}
    limits = httpx.Limits(max_connections=max(CLIENTS), max_keepalive_connections=max(CLIENTS))
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:

        async def home(rng: random.Random) -> bool:
            params = {"user_id": rng.choice(users), "count": FEED_COUNT}
            response = await http.get(url, params=params)
            return response.status_code == 200 and not response.json()["degraded"]

        await closed_loop(home, 1, 0)  # connect
        for _ in range(WARMUP_REQUESTS):
            await home(random.Random(0))
        for clients in CLIENTS:
            console.print(f"  HTTP home feed, {clients} client(s), {duration_s:.0f} s …")
            lat, bad = await closed_loop(home, clients, duration_s)
            key = f"http.c{clients}"
            results |= {
                f"{key}.p50_ms": percentile_ms(lat, 50),
                f"{key}.p99_ms": percentile_ms(lat, 99),
                f"{key}.rps": len(lat) / duration_s,
                f"{key}.degraded_share": bad / max(len(lat), 1),
            }
    return results


async def bench_stages(cfg: Config, users: list[int]) -> dict[str, float]:
    """p50 of each stage, in-process on the same stack (one request at a time)."""
    api = build_api(cfg)
    observer = RecordingObserver()
    api.service.runner = PipelineRunner(observer, cfg.serving)
    rng = random.Random(1)
    for i in range(WARMUP_REQUESTS + BREAKDOWN_REQUESTS):
        if i == WARMUP_REQUESTS:
            observer.stages.clear()
        await api.service.home(HomeQuery(user_id=rng.choice(users), count=FEED_COUNT))
    await asyncio.sleep(0.2)  # let the scheduled effects finish and report
    runs = observer.breakdown()
    out = {f"stage.{s}.p50_ms": percentile_ms(v, 50) for s, v in runs.items()}
    # The request's compute: stages on the usual path (run by most requests: not the
    # cold-start or degraded ones), without effects (they run after the answer is sent).
    usual = {
        s: out[f"stage.{s}.p50_ms"]
        for s, v in runs.items()
        if len(v) >= BREAKDOWN_REQUESTS / 2 and not s.startswith("effect/")
    }
    out["stage.sum_p50_ms"] = sum(usual.values())
    # Sources run concurrently: on the critical path only the slowest one counts.
    sources = [v for s, v in usual.items() if s.startswith("source/")]
    out["stage.critical_path_p50_ms"] = (
        out["stage.sum_p50_ms"] - sum(sources) + max(sources, default=0)
    )
    return out


def copy_pool(src: OnlineStore, dst: OnlineStore, ids: np.ndarray) -> None:
    """The same blobs under the same keys in another store."""
    blobs = src.get_many(VIDEO_ENTITY, ids.tolist())
    dst.put_many(VIDEO_ENTITY, ids.tolist(), [b or b"" for b in blobs])


async def bench_hydration(
    cfg: Config, cluster: OnlineStore, standalone: RedisStore, pool: np.ndarray, uspec: FeatureSpec
) -> dict[str, float]:
    """FeatureFetcher (cold / warm LRU) on the cluster vs a raw MGET on standalone, same keys."""
    rng = np.random.default_rng(2)
    raw, cold, warm = [], [], []
    # Measure the whole read, not the serving deadline (20 ms): count the overruns instead.
    serving = replace(cfg.serving, deadline_hydrate_ms=5_000)
    n = cfg.features.n_buckets
    for _ in range(HYDRATE_REPS):
        batch = rng.choice(pool, size=500, replace=False).tolist()
        keys = keys_for(VIDEO_ENTITY, batch, n)
        start = perf_counter()
        standalone.get_keys(keys)
        raw.append(perf_counter() - start)
        fetcher = FeatureFetcher(cluster, uspec, serving, n_buckets=n)
        start = perf_counter()
        _, present = await fetcher.video_vectors(batch)
        cold.append(perf_counter() - start)
        start = perf_counter()
        await fetcher.video_vectors(batch)
        warm.append(perf_counter() - start)
        if not present.all():
            raise RuntimeError("hydration bench: vectors missing from the cluster")
    return {
        "hydrate.cold.over_deadline_share": float(
            np.mean(np.asarray(cold) * 1000 > cfg.serving.deadline_hydrate_ms)
        ),
        "hydrate.raw_mget.p50_ms": percentile_ms(raw, 50),
        "hydrate.raw_mget.p99_ms": percentile_ms(raw, 99),
        "hydrate.cold.p50_ms": percentile_ms(cold, 50),
        "hydrate.cold.p99_ms": percentile_ms(cold, 99),
        "hydrate.warm.p50_ms": percentile_ms(warm, 50),
        "hydrate.warm.p99_ms": percentile_ms(warm, 99),
    }


def feast_python() -> Path | None:
    """Feast's own venv (`make .venv-feast`): it needs numpy 2, the serving venv numpy 1."""
    python = REPO_ROOT / ".venv-feast" / "bin" / "python"
    return python if python.is_file() else None


def bench_feast(
    store: OnlineStore, pool: np.ndarray, redis_port: int, work: Path, console: Console
) -> dict[str, float]:
    """Feast's p50 for 500 of the same vectors on the same standalone Redis (or skip: why)."""
    python = feast_python()
    if python is None:
        console.print("[yellow]Feast row skipped: no .venv-feast (run `make .venv-feast`)[/]")
        return {}
    values, _, _ = unpack_many(VIDEO_SPEC, store.get_many(VIDEO_ENTITY, pool.tolist()))
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "vectors.npy", values)
    np.save(work / "ids.npy", pool.astype(np.int64))
    argv = [str(python), str(REPO_ROOT / "benchmarks" / "feast_online.py")]
    argv += ["--redis", f"127.0.0.1:{redis_port}", "--vectors", str(work / "vectors.npy")]
    argv += ["--ids", str(work / "ids.npy"), "--batch", "500", "--repeats", str(FEAST_REPEATS)]
    console.print(f"  Feast get_online_features ({python}) …")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        console.print(
            f"[yellow]Feast row skipped: exit {done.returncode}[/]\n{done.stderr[-2000:]}"
        )
        return {}
    line = json.loads(done.stdout.strip().splitlines()[-1])
    return {"feast.p50_ms": float(line["p50_ms"]), "feast.p99_ms": float(line["p99_ms"])}


def start_standalone_redis(cfg: Config, run_dir: Path) -> ManagedProcess:
    solo = replace(
        cfg,
        stack=replace(cfg.stack, redis_cluster=False, redis_base_port=STANDALONE_REDIS_PORT),
    )
    proc = ManagedProcess(redis_spec(solo, run_dir), run_dir)
    proc.start().wait_healthy(30)
    return proc


def stage_phase(
    cfg: Config, scale_dir: Path, run_dir: Path, duration_s: float, console: Console
) -> dict[str, float]:
    """Everything measured on the stack: HTTP latency, stage breakdown, hydration, Feast."""
    stack = Stack(cfg, scale_dir, console)
    results: dict[str, float] = {}
    solo: ManagedProcess | None = None
    try:
        console.print("[bold cyan]▶[/] stack: redis cluster + prepare (demo features) …")
        stack.up(only={"redis", "prepare"}, progress=False)
        catalog = load_scale_catalog(scale_dir)
        table = write_serving_table(scale_dir, catalog)
        at_ms = int(json.loads((scale_dir / SERVING_DIR / CLOCK_FILE).read_text())["log_end_ms"])
        store = make_store(cfg.redis, cfg.features.n_buckets)
        try:
            console.print(f"[bold cyan]▶[/] video vectors for {table.height:,} videos → cluster")
            write_scale_vectors(store, table, at_ms)
            console.print("[bold cyan]▶[/] stack: triton, retrieval, features, recommender …")
            stack.up(only=STACK_SERVICES, progress=False)
            users = known_users(scale_dir)
            console.print("[bold cyan]▶[/] home feed over HTTP")
            results |= asyncio.run(bench_http(cfg, users, duration_s, console))
            console.print("[bold cyan]▶[/] per-stage breakdown (in-process, same stack)")
            results |= asyncio.run(bench_stages(cfg, users))
            console.print("[bold cyan]▶[/] hydration: cluster vs standalone MGET vs Feast")
            solo = start_standalone_redis(cfg, run_dir / "standalone")
            standalone = RedisStore.from_config(
                replace(cfg.redis, url=solo.spec.url, cluster=False), cfg.features.n_buckets
            )
            pool = np.random.default_rng(4).choice(table.height, FEAST_POOL, replace=False)
            copy_pool(store, standalone, pool)
            uspec = user_spec(static_dim_of(read_manifest(scale_dir / "manifest.json")))
            results |= asyncio.run(bench_hydration(cfg, store, standalone, pool, uspec))
            results |= bench_feast(store, pool, STANDALONE_REDIS_PORT, run_dir / "feast", console)
            standalone.close()
        finally:
            store.close()
    finally:
        if solo is not None:
            solo.stop()
        stack.down()
    return results


def targets(r: dict[str, float], rows: int) -> list[Target]:
    """The serving targets, each a ratio of two figures of this run (absent figures: skipped)."""
    found = [
        Target(
            "e2e p50 (1 client) ÷ Σ stage p50",
            r["http.c1.p50_ms"] / r["stage.sum_p50_ms"],
            LIMITS["e2e_vs_stages"],
            at_most=True,
        )
    ]
    for lru in ("cold", "warm"):
        found.append(
            Target(
                f"hydrate 500 ({lru} LRU) ÷ standalone MGET",
                r[f"hydrate.{lru}.p50_ms"] / r["hydrate.raw_mget.p50_ms"],
                LIMITS["hydrate_vs_mget"],
                at_most=True,
            )
        )
        if "feast.p50_ms" in r:
            found.append(
                Target(
                    f"Feast ÷ hydrate 500 ({lru} LRU)",
                    r["feast.p50_ms"] / r[f"hydrate.{lru}.p50_ms"],
                    LIMITS["feast_speedup"],
                    at_most=False,
                )
            )
    for b in (rows, SMALL_BATCH):
        found.append(
            Target(
                f"Triton batching ÷ none, 16 clients × {b} rows",
                r[f"triton.b{b}.batching_speedup"],
                LIMITS["batching_speedup"],
                at_most=False,
            )
        )
    found.append(Target("p99 at 8 clients (ms)", r["http.c8.p99_ms"], LIMITS["p99_8_ms"], True))
    return found


def plot(r: dict[str, float], path: Path, n_videos: int) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for q in ("p50", "p99"):
        left.plot(CLIENTS, [r[f"http.c{c}.{q}_ms"] for c in CLIENTS], marker="o", label=q)
    left.axhline(LIMITS["p99_8_ms"], color="grey", ls="--", lw=0.8, label="p99 target @8")
    left.set_xscale("log", base=2)
    left.set_xticks(CLIENTS, [str(c) for c in CLIENTS])
    left.set_xlabel("concurrent clients (closed loop)")
    left.set_ylabel("home feed latency over HTTP (ms)")
    left.set_title(f"home feed, {n_videos:,} videos")
    left.grid(alpha=0.3)
    left.legend()
    stages = {k[6:-7]: v for k, v in r.items() if k.startswith("stage.") and "/" in k}
    right.barh(list(stages), list(stages.values()))
    right.invert_yaxis()
    right.set_xlabel("p50 (ms), in-process, one request at a time")
    right.set_title("per-stage breakdown")
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(r: dict[str, float], found: list[Target], console: Console) -> None:
    figures = Table(title="serving benchmarks", title_justify="left")
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    for key, value in r.items():
        figures.add_row(key, f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}")
    console.print(figures)
    verdicts = Table("target (ratio of this run)", "value", "limit", "", title_justify="left")
    verdicts.title = "serving targets"
    for t in found:
        verdicts.add_row(*t.row())
    console.print(verdicts)


def run(
    out: Path, n_videos: int = 1_000_000, candidates: int = 500, duration_s: float = 20.0
) -> dict[str, float]:
    """Build (or reuse) the scale artefacts, measure everything, write JSON + PNG, print."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    demo = load_config().serving.artefacts_dir
    scale_dir = write_scale_artefacts(demo, out / f"scale-{n_videos}", n_videos, console)
    cfg = bench_config(out / "run", scale_dir)
    cfg = replace(cfg, serving=replace(cfg.serving, rank_top_n=candidates))
    results: dict[str, float] = {"videos": float(n_videos), "candidates": float(candidates)}
    results |= stage_phase(cfg, scale_dir, out / "run", duration_s, console)
    # Informational: the same ratio against the critical path (concurrent sources: max, not sum).
    results["http.c1.p50_vs_critical_path"] = (
        results["http.c1.p50_ms"] / results["stage.critical_path_p50_ms"]
    )
    console.print("[bold cyan]▶[/] Triton: dynamic batching vs none")
    results |= bench_triton(demo, out / "triton", candidates, min(duration_s, 10.0), console)
    found = targets(results, candidates)
    results |= {f"target.{t.name}": t.value for t in found}
    results |= {f"target.{t.name}.pass": float(t.passed) for t in found}
    (out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "serving_latency.png", n_videos)
    report({k: v for k, v in results.items() if not k.startswith("target.")}, found, console)
    return results
