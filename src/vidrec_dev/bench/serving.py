"""`vidrec bench serving`: what a home feed costs at catalogue scale, in CPU and in latency.

One run, one machine, one scale artefact dir (:mod:`vidrec_dev.bench.scale_artefacts`):
- **levels**: the home feed over HTTP through the real BentoML Recommender started by the
  real stack runner (its own run dir, ports from ``VIDREC_BENCH__BASE_PORT`` or free ones),
  closed-loop httpx clients at each load level. Per level: p50/p99, req/s, the degraded share,
  and the CPU ms per request of every service's whole process tree (:mod:`vidrec_dev.bench.cpu`,
  the same window's requests), their sum (``stack``), the load generator's own share (this
  process) and RSS per service;
- the per-stage breakdown, in-process (``build_api`` on the same stack, one request at a
  time): wall p50 and process CPU per stage;
- **components**: user tower, ANN, ranker ORT alone, one thread each
  (:mod:`vidrec_dev.bench.components`), and a raw MGET of 500 keys on a standalone Redis;
- hydrating 500 candidates (``FeatureFetcher``, cold and warm LRU, on the stack's Redis
  Cluster) against that MGET, and against Feast's ``get_online_features`` for the same
  vectors on that Redis (its own venv, a subprocess);
- Triton with and without dynamic batching (:mod:`vidrec_dev.bench.triton`);
- **index**: the FAISS index's size and build time per million videos (``scale_meta.json``).
Results go to ``OUT/serving.json`` and ``OUT/serving_latency.png``; the tables and the
PASS/MISS targets are printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter, process_time
from typing import Any, ClassVar

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from vidrec.api.compose import build_api
from vidrec.backends.features import FeatureFetcher
from vidrec.backends.serving_state import static_dim_of
from vidrec.config import REPO_ROOT, BenchConfig, Config, load_config
from vidrec.contracts.artefacts import CLOCK_FILE, SERVING_DIR
from vidrec.contracts.manifest import read_manifest
from vidrec.features import VIDEO_SPEC, FeatureSpec, make_store, unpack_many, user_spec
from vidrec.features.stores import VIDEO_ENTITY, OnlineStore, RedisStore, keys_for
from vidrec.pipeline.base import UserContext
from vidrec.pipeline.observer import RecordingObserver
from vidrec.pipeline.runner import PipelineRunner
from vidrec.ranking.triton_process import TritonPorts
from vidrec.schema import HomeQuery
from vidrec_dev.bench.components import bench_components, percentile_ms, server_cpu_ms
from vidrec_dev.bench.cpu import MIB, ProcessTreeCPU, cpu_seconds, machine_busy_s
from vidrec_dev.bench.scale_artefacts import (
    SCALE_META,
    load_scale_catalog,
    write_scale_artefacts,
    write_scale_vectors,
    write_serving_table,
)
from vidrec_dev.bench.triton import SMALL_BATCH, bench_triton
from vidrec_dev.stack.process import ManagedProcess
from vidrec_dev.stack.runner import Stack
from vidrec_dev.stack.services import CLUSTER_BUS_OFFSET, CLUSTER_MASTERS, redis_spec, redis_url

__all__ = ["BenchPorts", "Target", "bench_config", "closed_loop", "percentile_ms", "run"]

LEVELS = (1, 2, 4, 8, 16, 32)  # closed-loop clients per load level
HYDRATE_REPS = 200
FEAST_POOL = 10_000  # ids written to the standalone Redis (vidrec layout and Feast's)
FEAST_REPEATS = 50
BREAKDOWN_REQUESTS = 200
WARMUP_REQUESTS = 20
FEED_COUNT = 20
CONTEXT_USERS = 200  # user contexts read for the components bench
STACK_SERVICES = {"redis", "prepare", "triton", "retrieval", "features", "recommender"}
TARGET_CLIENTS = 8  # the level the CPU and latency targets are read at
SLA_P99_MS = 100.0
SLA_DEGRADED = 0.01
LIMITS = {
    "stack_cpu_ms": 10.0,
    "p99_ms": SLA_P99_MS,
    "degraded_ratio": SLA_DEGRADED,
    "capacity_per_core": 60.0,
    "hydrate_vs_mget": 2.0,
    "batching_speedup": 1.5,
    "e2e_vs_stages": 1.5,
    "feast_speedup": 3.0,
}


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
        shown = f"{self.value:,.2f}" if abs(self.value) >= 1 else f"{self.value:.3f}"
        return self.name, shown, f"{sign} {self.limit:g}", verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "at_most": self.at_most,
            "passed": self.passed,
        }


# -- ports -----------------------------------------------------------------------------------


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound on ``host`` right now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class BenchPorts:
    """A bench's own stack. :meth:`from_config` lays them out as one block from
    ``VIDREC_BENCH__BASE_PORT``, or from a block free at run time, so that a bench runs
    beside `make up` (default ports) and beside another bench."""

    redis: int  # cluster masters redis..redis+2 (+ bus ports +10000)
    triton: TritonPorts
    recommender: int
    retrieval: int
    features: int
    grpc: int
    grpc_metrics: int
    prometheus: int
    standalone_redis: int = 0  # the hydration bench's standalone Redis (0: a free one then)

    SPAN: ClassVar[int] = 13  # ports in a block, from the base

    @classmethod
    def from_base(cls, base: int) -> BenchPorts:
        top = max(base + cls.SPAN - 1, base + CLUSTER_MASTERS - 1 + CLUSTER_BUS_OFFSET)
        if base < 1024 or top > 65_535:
            raise ValueError(
                f"VIDREC_BENCH__BASE_PORT={base}: the bench needs ports {base}..{base + 12} "
                f"and {base + CLUSTER_BUS_OFFSET}..{top} (Redis Cluster bus): "
                f"choose 1024..{65_535 - CLUSTER_BUS_OFFSET - CLUSTER_MASTERS + 1}, or 0 "
                "for a free block"
            )
        b = base + CLUSTER_MASTERS
        return cls(
            base,
            TritonPorts(http=b + 1, grpc=b + 2, metrics=b + 3),
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            standalone_redis=b,
        )

    def all(self) -> list[int]:
        """Every port the block uses, cluster bus ports included."""
        redis = [self.redis + i for i in range(CLUSTER_MASTERS)]
        t = self.triton
        return [
            *redis,
            *(p + CLUSTER_BUS_OFFSET for p in redis),
            t.http,
            t.grpc,
            t.metrics,
            self.recommender,
            self.retrieval,
            self.features,
            self.grpc,
            self.grpc_metrics,
            self.prometheus,
            self.standalone_redis,
        ]

    @classmethod
    def free(cls, attempts: int = 500) -> BenchPorts:
        """A block whose every port is free now (the OS picks the base)."""
        for _ in range(attempts):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                base = int(s.getsockname()[1])
            try:
                ports = cls.from_base(base)
            except ValueError:
                continue
            if all(map(port_free, ports.all())):
                return ports
        raise RuntimeError(f"no block of {cls.SPAN} free ports on 127.0.0.1")

    @classmethod
    def from_config(cls, cfg: BenchConfig) -> BenchPorts:
        return cls.from_base(cfg.base_port) if cfg.base_port else cls.free()


def bench_config(run_dir: Path, artefacts_dir: Path, ports: BenchPorts) -> Config:
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


def level_record(
    clients: int,
    latencies: Sequence[float],
    bad: int,
    window_s: float,
    service_cpu_s: Mapping[str, float],
    load_generator_cpu_s: float,
    rss_mib: Mapping[str, float],
    machine_busy_s: float | None = None,
) -> dict[str, Any]:
    """One load level as ``serving.json`` records it: CPU per request per service and in all
    (``stack``), the load generator apart (it is not the stack's cost, but it shares the CPUs)."""
    n = max(len(latencies), 1)
    per_request = {name: s * 1000 / n for name, s in service_cpu_s.items()}
    per_request["stack"] = sum(per_request.values())
    return {
        "clients": clients,
        "requests": len(latencies),
        "window_s": window_s,
        "rps": len(latencies) / window_s,
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "degraded_ratio": bad / n,
        "cpu_ms_per_request": per_request,
        "load_generator_cpu_ms_per_request": load_generator_cpu_s * 1000 / n,
        # Cores kept busy by the stack and the load generator together (of os.cpu_count()).
        "cores_busy": (sum(service_cpu_s.values()) + load_generator_cpu_s) / window_s,
        # ... and by everything on the machine: the difference is what else competed.
        "machine_cores_busy": None if machine_busy_s is None else machine_busy_s / window_s,
        "rss_mib": dict(rss_mib),
    }


async def bench_levels(
    cfg: Config,
    users: list[int],
    levels: Sequence[int],
    duration_s: float,
    meter: ProcessTreeCPU,
    console: Console,
) -> list[dict[str, Any]]:
    """Closed-loop home feeds over HTTP, level by level, each level its own CPU window."""
    url = f"http://127.0.0.1:{cfg.serving.recommender_port}/api/v1/recommendations/home"
    out = []
    most = max(levels)
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:

        async def home(rng: random.Random) -> bool:
            params = {"user_id": rng.choice(users), "count": FEED_COUNT}
            response = await http.get(url, params=params)
            return response.status_code == 200 and not response.json()["degraded"]

        for _ in range(WARMUP_REQUESTS):
            await home(random.Random(0))
        await asyncio.gather(*(home(random.Random(i)) for i in range(most)))  # open connections
        for clients in levels:
            console.print(f"  HTTP home feed, {clients} client(s), {duration_s:g} s …")
            before = meter.sample()
            busy0, cpu0, start = machine_busy_s(), process_time(), perf_counter()
            latencies, bad = await closed_loop(home, clients, duration_s)
            window_s, own_cpu = perf_counter() - start, process_time() - cpu0
            busy = machine_busy_s() - busy0
            after = meter.sample()
            rss = {name: usage.rss_mib for name, usage in after.items()}
            spent = cpu_seconds(before, after)
            out.append(level_record(clients, latencies, bad, window_s, spent, own_cpu, rss, busy))
    return out


def capacity(levels: Sequence[Mapping[str, Any]], cores: int) -> dict[str, Any]:
    """The highest req/s of a level within the SLA (p99 and degraded share), per core too."""
    within = [
        lv for lv in levels if lv["p99_ms"] <= SLA_P99_MS and lv["degraded_ratio"] <= SLA_DEGRADED
    ]
    best = max(within, key=lambda lv: lv["rps"], default=None)
    rps = 0.0 if best is None else float(best["rps"])
    return {
        "rps": rps,
        "clients": None if best is None else best["clients"],
        "cores": cores,
        "per_core": rps / cores,
        "sla_p99_ms": SLA_P99_MS,
        "sla_degraded_ratio": SLA_DEGRADED,
    }


def level_at(levels: Sequence[Mapping[str, Any]], clients: int) -> Mapping[str, Any] | None:
    return next((lv for lv in levels if lv["clients"] == clients), None)


def legacy_http_figures(levels: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The flat ``http.c<N>.*`` figures earlier runs recorded, from the levels."""
    out: dict[str, float] = {}
    for lv in levels:
        key = f"http.c{lv['clients']}"
        out |= {
            f"{key}.p50_ms": lv["p50_ms"],
            f"{key}.p99_ms": lv["p99_ms"],
            f"{key}.rps": lv["rps"],
            f"{key}.degraded_share": lv["degraded_ratio"],
        }
    return out


@dataclass
class CPUObserver(RecordingObserver):
    """Also the process CPU spent since the previous stage report (or :meth:`mark`), kept
    per report: with one request at a time, that is the stage's own CPU (all threads of this
    process). Concurrent sources share one stretch of CPU, so only their sum means anything."""

    cpu: list[tuple[str, float]] = field(default_factory=list)
    _mark: float = field(default_factory=process_time)

    def mark(self) -> None:
        self._mark = process_time()

    def stage(
        self, surface: str, stage_id: str, variant: str, seconds: float, outcome: str
    ) -> None:
        now = process_time()
        self.cpu.append((stage_id, now - self._mark))
        self._mark = now
        super().stage(surface, stage_id, variant, seconds, outcome)


def stage_figures(observer: CPUObserver, requests: int) -> dict[str, Any]:
    """Per stage: wall p50 and CPU per run; sources' CPU as one sum per request."""
    runs = observer.breakdown()
    cpu: dict[str, list[float]] = {}
    for sid, seconds in observer.cpu:
        cpu.setdefault(sid, []).append(seconds)
    stages: dict[str, dict[str, Any]] = {
        sid: {
            "runs": len(walls),
            "p50_ms": percentile_ms(walls, 50),
            "cpu_ms": None if sid.startswith("source/") else float(np.mean(cpu[sid])) * 1000,
        }
        for sid, walls in runs.items()
    }
    # The request's compute: stages on the usual path (run by most requests: not the
    # cold-start or degraded ones), without effects (they run after the answer is sent).
    usual = {
        s: v["p50_ms"]
        for s, v in stages.items()
        if v["runs"] >= requests / 2 and not s.startswith("effect/")
    }
    sources = [v for s, v in usual.items() if s.startswith("source/")]
    source_cpu = sum(c for sid, c in observer.cpu if sid.startswith("source/"))
    request_cpu = sum(c for sid, c in observer.cpu if not sid.startswith("effect/"))
    total = sum(usual.values())
    return {
        "stages": stages,
        "sources_cpu_ms": source_cpu * 1000 / requests,  # all sources of a request, summed
        "cpu_ms_per_request": request_cpu * 1000 / requests,  # effects excluded
        "sum_p50_ms": total,
        # Sources run concurrently: on the critical path only the slowest one counts.
        "critical_path_p50_ms": total - sum(sources) + max(sources, default=0),
    }


async def bench_stages(cfg: Config, users: list[int]) -> dict[str, Any]:
    """Per stage wall p50 and CPU, in-process on the same stack (one request at a time)."""
    api = build_api(cfg)
    observer = CPUObserver()
    runner = api.service.runner = PipelineRunner(observer, cfg.serving)
    rng = random.Random(1)
    try:
        for i in range(WARMUP_REQUESTS + BREAKDOWN_REQUESTS):
            if i == WARMUP_REQUESTS:
                observer.stages.clear()
                observer.cpu.clear()
            observer.mark()
            await api.service.home(HomeQuery(user_id=rng.choice(users), count=FEED_COUNT))
            await runner.drain()  # the effects report before the next request starts
    finally:
        if api.cold_start is not None:  # its poller would outlive the stack, failing
            api.cold_start.stop()
    return stage_figures(observer, BREAKDOWN_REQUESTS)


def legacy_stage_figures(found: Mapping[str, Any]) -> dict[str, float]:
    out = {f"stage.{s}.p50_ms": v["p50_ms"] for s, v in found["stages"].items()}
    out |= {
        f"stage.{s}.cpu_ms": v["cpu_ms"]
        for s, v in found["stages"].items()
        if v["cpu_ms"] is not None
    }
    out["stage.sources.cpu_ms"] = found["sources_cpu_ms"]
    out["stage.sum_p50_ms"] = found["sum_p50_ms"]
    out["stage.critical_path_p50_ms"] = found["critical_path_p50_ms"]
    out["stage.cpu_ms_per_request"] = found["cpu_ms_per_request"]
    return out


async def user_contexts(
    cfg: Config, store: OnlineStore, uspec: FeatureSpec, users: Sequence[int]
) -> list[UserContext]:
    """The users' contexts as the pipeline reads them (vector, recent watches)."""
    fetcher = FeatureFetcher(store, uspec, cfg.serving, n_buckets=cfg.features.n_buckets)
    return [await fetcher.user_context(u, None) for u in users]


def copy_pool(src: OnlineStore, dst: OnlineStore, ids: np.ndarray) -> None:
    """The same blobs under the same keys in another store."""
    blobs = src.get_many(VIDEO_ENTITY, ids.tolist())
    dst.put_many(VIDEO_ENTITY, ids.tolist(), [b or b"" for b in blobs])


async def bench_hydration(
    cfg: Config,
    cluster: OnlineStore,
    standalone: RedisStore,
    pool: np.ndarray,
    uspec: FeatureSpec,
    servers: ProcessTreeCPU | None = None,
) -> dict[str, float]:
    """FeatureFetcher (cold / warm LRU) on the cluster vs a raw MGET on standalone, same keys.

    ``servers``, when given, samples the ``cluster`` and ``standalone`` Redis trees: the
    standalone one serves only the raw MGETs, the cluster only the cold reads (warm ones stay
    in the LRU), so their CPU per call is the server side of each read.
    """
    rng = np.random.default_rng(2)
    raw, cold, warm = [], [], []
    raw_cpu = cold_cpu = 0.0
    # Measure the whole read, not the serving deadline (20 ms): count the overruns instead.
    serving = replace(cfg.serving, deadline_hydrate_ms=5_000)
    n = cfg.features.n_buckets
    fetcher = FeatureFetcher(cluster, uspec, serving, n_buckets=n)
    before = servers.sample() if servers else {}
    for _ in range(HYDRATE_REPS):
        batch = rng.choice(pool, size=500, replace=False).tolist()
        keys = keys_for(VIDEO_ENTITY, batch, n)
        cpu0, start = process_time(), perf_counter()
        standalone.get_keys(keys)
        raw.append(perf_counter() - start)
        raw_cpu += process_time() - cpu0
        fetcher.lru.clear()  # cold: no id in the cache, in a process that has served before
        cpu0, start = process_time(), perf_counter()
        _, present = await fetcher.video_vectors(batch)
        cold.append(perf_counter() - start)
        cold_cpu += process_time() - cpu0
        start = perf_counter()
        await fetcher.video_vectors(batch)
        warm.append(perf_counter() - start)
        if not present.all():
            raise RuntimeError("hydration bench: vectors missing from the cluster")
    after = servers.sample() if servers else {}
    per_call = 1000 / HYDRATE_REPS
    found = {
        "hydrate.cold.over_deadline_share": float(
            np.mean(np.asarray(cold) * 1000 > cfg.serving.deadline_hydrate_ms)
        ),
        "hydrate.raw_mget.p50_ms": percentile_ms(raw, 50),
        "hydrate.raw_mget.p99_ms": percentile_ms(raw, 99),
        "hydrate.raw_mget.client_cpu_ms": raw_cpu * per_call,
        "hydrate.cold.p50_ms": percentile_ms(cold, 50),
        "hydrate.cold.p99_ms": percentile_ms(cold, 99),
        "hydrate.cold.client_cpu_ms": cold_cpu * per_call,
        "hydrate.warm.p50_ms": percentile_ms(warm, 50),
        "hydrate.warm.p99_ms": percentile_ms(warm, 99),
    }
    for name, key in (("standalone", "raw_mget"), ("cluster", "cold")):
        if name in after:
            found[f"hydrate.{key}.server_cpu_ms"] = server_cpu_ms(
                before[name], after[name], HYDRATE_REPS
            )
    return found


def mget_component(figures: Mapping[str, float]) -> dict[str, float]:
    """The standalone MGET of 500 keys as a component (client + server CPU per call)."""
    client = figures["hydrate.raw_mget.client_cpu_ms"]
    server = figures["hydrate.raw_mget.server_cpu_ms"]
    return {
        "keys": 500,
        "calls": HYDRATE_REPS,
        "p50_ms": figures["hydrate.raw_mget.p50_ms"],
        "cpu_ms": client + server,
        "client_cpu_ms": client,
        "server_cpu_ms": server,
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


def start_standalone_redis(cfg: Config, run_dir: Path, port: int) -> ManagedProcess:
    solo = replace(cfg, stack=replace(cfg.stack, redis_cluster=False, redis_base_port=port))
    proc = ManagedProcess(redis_spec(solo, run_dir), run_dir)
    proc.start().wait_healthy(30)
    return proc


def service_roots(stack: Stack) -> dict[str, int]:
    """Root pid of every long-running service of ``stack`` (one-shot steps have none)."""
    return {s.service: s.pid for s in stack.status() if s.pid is not None and s.alive}


def index_figures(scale_dir: Path) -> dict[str, Any]:
    """Index (and item-item lists) size and build time from ``scale_meta.json`` (null when it
    was not written), also per million videos so that runs at other sizes compare."""
    path = scale_dir / SCALE_META
    meta: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    keys = ("videos", "index_build_s", "index_bytes", "neighbours_build_s", "neighbours_bytes")
    out: dict[str, Any] = {k: meta.get(k) for k in keys} | meta
    videos = out["videos"]

    def per_million(value: float | None, unit: float = 1.0) -> float | None:
        return None if value is None or not videos else value / unit * 1e6 / videos

    out["index_build_s_per_million"] = per_million(out["index_build_s"])
    out["index_mib_per_million"] = per_million(out["index_bytes"], MIB)
    out["neighbours_build_s_per_million"] = per_million(out["neighbours_build_s"])
    out["neighbours_mib_per_million"] = per_million(out["neighbours_bytes"], MIB)
    return out


@dataclass
class StackFigures:
    levels: list[dict[str, Any]]
    stages: dict[str, Any]
    components: dict[str, dict[str, float]]
    figures: dict[str, float]  # flat: hydration, Feast


def stack_phase(
    cfg: Config,
    scale_dir: Path,
    run_dir: Path,
    ports: BenchPorts,
    levels: Sequence[int],
    duration_s: float,
    console: Console,
) -> StackFigures:
    """Everything measured on the stack: levels, stages, components, hydration, Feast."""
    stack = Stack(cfg, scale_dir, console)
    solo: ManagedProcess | None = None
    try:
        console.print("[bold cyan]▶[/] stack: redis cluster + prepare, video vectors → cluster")
        table, store = scale_data_up(stack, scale_dir)
        try:
            console.print("[bold cyan]▶[/] stack: triton, retrieval, features, recommender …")
            stack.up(only=STACK_SERVICES, progress=False)
            roots = service_roots(stack)
            users = known_users(scale_dir)
            console.print("[bold cyan]▶[/] home feed over HTTP, level by level")
            meter = ProcessTreeCPU(roots)
            found = asyncio.run(bench_levels(cfg, users, levels, duration_s, meter, console))
            console.print("[bold cyan]▶[/] per-stage breakdown (in-process, same stack)")
            stages = asyncio.run(bench_stages(cfg, users))
            console.print("[bold cyan]▶[/] components alone: user tower, ANN, ranker ORT")
            uspec = user_spec(static_dim_of(read_manifest(scale_dir / "manifest.json")))
            contexts = asyncio.run(user_contexts(cfg, store, uspec, users[:CONTEXT_USERS]))
            components = bench_components(scale_dir, contexts, cfg.serving, cfg.serving.rank_top_n)
            console.print("[bold cyan]▶[/] hydration: cluster vs standalone MGET vs Feast")
            port = ports.standalone_redis or BenchPorts.free().standalone_redis
            solo = start_standalone_redis(cfg, run_dir / "standalone", port)
            assert solo.pid is not None
            standalone = RedisStore.from_config(
                replace(cfg.redis, url=solo.spec.url, cluster=False), cfg.features.n_buckets
            )
            pool = np.random.default_rng(4).choice(table.height, FEAST_POOL, replace=False)
            copy_pool(store, standalone, pool)
            servers = ProcessTreeCPU({"cluster": roots["redis"], "standalone": solo.pid})
            figures = asyncio.run(bench_hydration(cfg, store, standalone, pool, uspec, servers))
            components["mget_standalone"] = mget_component(figures)
            figures |= bench_feast(store, pool, port, run_dir / "feast", console)
            standalone.close()
        finally:
            store.close()
    finally:
        if solo is not None:
            solo.stop()
        stack.down()
    return StackFigures(found, stages, components, figures)


def scale_data_up(stack: Stack, scale_dir: Path) -> tuple[pl.DataFrame, OnlineStore]:
    """Redis up with the demo's users and sessions (``prepare``), then the scale catalogue's
    serving table and its video vectors in it; returns that table and an open store (the
    caller closes it)."""
    stack.up(only={"redis", "prepare"}, progress=False)
    table = write_serving_table(scale_dir, load_scale_catalog(scale_dir))
    at_ms = int(json.loads((scale_dir / SERVING_DIR / CLOCK_FILE).read_text())["log_end_ms"])
    cfg = stack.cfg  # the Redis this stack runs, whatever cfg.redis says
    redis = replace(cfg.redis, url=redis_url(cfg), cluster=cfg.stack.redis_cluster)
    store = make_store(redis, cfg.features.n_buckets)
    write_scale_vectors(store, table, at_ms)
    return table, store


def targets(r: Mapping[str, Any], rows: int) -> list[Target]:
    """The issue's targets on this run's figures (a target whose figures are absent is skipped:
    e.g. no 8-client level in ``--levels``)."""
    f, found = r["figures"], []
    at = level_at(r["levels"], TARGET_CLIENTS)
    if at is not None:
        c = TARGET_CLIENTS
        found += [
            Target(
                f"stack CPU ms per home request ({c} clients)",
                at["cpu_ms_per_request"]["stack"],
                LIMITS["stack_cpu_ms"],
                at_most=True,
            ),
            Target(f"p99 ms at {c} clients", at["p99_ms"], LIMITS["p99_ms"], at_most=True),
            Target(
                f"degraded share at {c} clients",
                at["degraded_ratio"],
                LIMITS["degraded_ratio"],
                at_most=True,
            ),
        ]
    found.append(
        Target(
            "capacity req/s per core (p99 ≤ 100 ms, ≤ 1 % degraded)",
            r["capacity"]["per_core"],
            LIMITS["capacity_per_core"],
            at_most=False,
        )
    )
    raw = f.get("hydrate.raw_mget.p50_ms")
    for lru in ("cold", "warm"):
        if raw and f"hydrate.{lru}.p50_ms" in f:
            found.append(
                Target(
                    f"hydrate 500 ({lru} LRU) ÷ standalone MGET",
                    f[f"hydrate.{lru}.p50_ms"] / raw,
                    LIMITS["hydrate_vs_mget"],
                    at_most=True,
                )
            )
        if "feast.p50_ms" in f and f"hydrate.{lru}.p50_ms" in f:
            found.append(
                Target(
                    f"Feast ÷ hydrate 500 ({lru} LRU)",
                    f["feast.p50_ms"] / f[f"hydrate.{lru}.p50_ms"],
                    LIMITS["feast_speedup"],
                    at_most=False,
                )
            )
    for b in (rows, SMALL_BATCH):
        if f"triton.b{b}.batching_speedup" in f:
            found.append(
                Target(
                    f"Triton batching ÷ none, 16 clients × {b} rows",
                    f[f"triton.b{b}.batching_speedup"],
                    LIMITS["batching_speedup"],
                    at_most=False,
                )
            )
    one = level_at(r["levels"], 1)
    if one is not None and r["stages"]["sum_p50_ms"]:
        found.append(
            Target(
                "e2e p50 (1 client) ÷ Σ stage p50",
                one["p50_ms"] / r["stages"]["sum_p50_ms"],
                LIMITS["e2e_vs_stages"],
                at_most=True,
            )
        )
    return found


def services_of(levels: Sequence[Mapping[str, Any]]) -> list[str]:
    """Service names in the levels' CPU records, the stack's total left out."""
    names = dict.fromkeys(k for lv in levels for k in lv["cpu_ms_per_request"] if k != "stack")
    return list(names)


def plot(r: Mapping[str, Any], path: Path) -> None:
    levels = r["levels"]
    clients = [lv["clients"] for lv in levels]
    fig, (lat, cpu, stage) = plt.subplots(1, 3, figsize=(18, 4.8))
    for q in ("p50", "p99"):
        lat.plot(clients, [lv[f"{q}_ms"] for lv in levels], marker="o", label=q)
    lat.axhline(SLA_P99_MS, color="grey", ls="--", lw=0.8, label="p99 SLA")
    lat.set_xscale("log", base=2)
    lat.set_xticks(clients, [str(c) for c in clients])
    lat.set_xlabel("concurrent clients (closed loop)")
    lat.set_ylabel("home feed latency over HTTP (ms)")
    lat.set_title(f"home feed, {r['videos']:,} videos, {r['candidates']} candidates")
    lat.grid(alpha=0.3)
    lat.legend()
    x = np.arange(len(levels))
    bottom = np.zeros(len(levels))
    for name in [*services_of(levels), "load_generator"]:
        key = "load_generator_cpu_ms_per_request"
        ms = np.array(
            [
                lv[key] if name == "load_generator" else lv["cpu_ms_per_request"][name]
                for lv in levels
            ]
        )
        cpu.bar(x, ms, bottom=bottom, label=name, hatch="//" if name == "load_generator" else "")
        bottom += ms
    cpu.axhline(LIMITS["stack_cpu_ms"], color="grey", ls="--", lw=0.8, label="stack target")
    cpu.set_xticks(x, [str(c) for c in clients])
    cpu.set_xlabel("concurrent clients (closed loop)")
    cpu.set_ylabel("CPU ms per home request")
    cpu.set_title("CPU per request, by service (process trees)")
    cpu.grid(alpha=0.3, axis="y")
    cpu.legend(fontsize=8)
    stages = r["stages"]["stages"]
    names = [s for s in stages if not s.startswith("effect/")]
    walls = [stages[s]["p50_ms"] for s in names] + [0.0]
    cpus = [stages[s]["cpu_ms"] or 0.0 for s in names] + [r["stages"]["sources_cpu_ms"]]
    y = np.arange(len(walls))
    stage.barh(y - 0.2, walls, 0.4, label="wall p50")
    stage.barh(y + 0.2, cpus, 0.4, label="CPU (mean)")
    stage.set_yticks(y, [*names, "sources (Σ, concurrent)"])
    stage.invert_yaxis()
    stage.set_xlabel("ms, in-process, one request at a time")
    stage.set_title("per-stage breakdown")
    stage.grid(alpha=0.3, axis="x")
    stage.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or (abs(value) >= 10 and float(value).is_integer()):
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def report(r: Mapping[str, Any], found: list[Target], console: Console) -> None:
    levels = r["levels"]
    # Services down the side and load levels across: six levels fit a log's 80 columns.
    cost = Table(
        "clients (closed loop)",
        *(str(lv["clients"]) for lv in levels),
        title="CPU ms per home request (process trees: utime+stime ÷ requests)",
        title_justify="left",
    )
    for col in cost.columns[1:]:
        col.justify = "right"
    for name in services_of(levels):
        cost.add_row(name, *(_ms(lv["cpu_ms_per_request"][name]) for lv in levels))
    cost.add_row(
        "[bold]stack[/]",
        *(f"[bold]{_ms(lv['cpu_ms_per_request']['stack'])}[/]" for lv in levels),
        end_section=True,
    )
    cost.add_row(
        "load generator",
        *(_ms(lv["load_generator_cpu_ms_per_request"]) for lv in levels),
        end_section=True,
    )
    cost.add_row("req/s", *(f"{lv['rps']:,.1f}" for lv in levels))
    cost.add_row("p50 ms", *(_ms(lv["p50_ms"]) for lv in levels))
    cost.add_row("p99 ms", *(_ms(lv["p99_ms"]) for lv in levels))
    cost.add_row("degraded", *(f"{lv['degraded_ratio']:.1%}" for lv in levels))
    cost.add_row("cores busy: bench", *(f"{lv['cores_busy']:.2f}" for lv in levels))
    machine = [lv.get("machine_cores_busy") for lv in levels]
    cost.add_row("cores busy: machine", *("—" if m is None else f"{m:.2f}" for m in machine))
    console.print(cost)
    parts = Table("component (one thread)", "p50 ms", "CPU ms per call", title_justify="left")
    parts.title = "component limits, same run"
    for name, v in r["components"].items():
        parts.add_row(name, _ms(v["p50_ms"]), _ms(v["cpu_ms"]))
    console.print(parts)
    st = Table("stage", "p50 ms", "CPU ms", title="per stage (in-process)", title_justify="left")
    for name, v in r["stages"]["stages"].items():
        st.add_row(name, _ms(v["p50_ms"]), _ms(v["cpu_ms"]))
    st.add_row("sources (together)", "", _ms(r["stages"]["sources_cpu_ms"]))
    st.add_row("request (effects excluded)", "", _ms(r["stages"]["cpu_ms_per_request"]))
    console.print(st)
    figures = Table("figure", "value", title="other figures", title_justify="left")
    for key, value in r["figures"].items():
        if not key.startswith(("http.", "stage.")):
            figures.add_row(key, _ms(value))
    for key, value in r["index"].items():
        shown = "null" if value is None else value if isinstance(value, str) else _ms(value)
        figures.add_row(f"index.{key}", shown)
    cap = r["capacity"]
    figures.add_row("capacity req/s (cores)", f"{cap['rps']:,.1f} ({cap['cores']})")
    console.print(figures)
    verdicts = Table("target", "value", "limit", "", title="serving targets", title_justify="left")
    for t in found:
        verdicts.add_row(*t.row())
    console.print(verdicts)


def run(
    out: Path,
    n_videos: int = 1_000_000,
    candidates: int = 500,
    duration_s: float = 20.0,
    levels: Sequence[int] = LEVELS,
    http_host: str = "",
) -> dict[str, Any]:
    """Build (or reuse) the scale artefacts, measure everything, write JSON + PNG, print."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    base = load_config()
    demo = base.serving.artefacts_dir
    scale_dir = write_scale_artefacts(demo, out / f"scale-{n_videos}", n_videos, console)
    ports = BenchPorts.from_config(base.bench)
    cfg = bench_config(out / "run", scale_dir, ports)
    cfg = replace(cfg, serving=replace(cfg.serving, rank_top_n=candidates,
                                       http_host=http_host or cfg.serving.http_host))  # fmt: skip
    cores = os.cpu_count() or 1
    load_start = os.getloadavg()
    # Triton first: its own servers, while no stack runs (the in-process API's background
    # threads outlive the stack and would complain meanwhile).
    console.print("[bold cyan]▶[/] Triton: dynamic batching vs none")
    triton = bench_triton(demo, out / "triton", candidates, min(duration_s, 10.0), console)
    found = stack_phase(cfg, scale_dir, out / "run", ports, levels, duration_s, console)
    figures = legacy_http_figures(found.levels) | legacy_stage_figures(found.stages)
    figures |= found.figures | triton
    results: dict[str, Any] = {
        "videos": n_videos,
        "candidates": candidates,
        "http_host": cfg.serving.http_host,
        "cores": cores,
        "duration_s": duration_s,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "levels": found.levels,
        "capacity": capacity(found.levels, cores),
        "components": found.components,
        "index": index_figures(scale_dir),
        "stages": found.stages,
        "figures": figures,
    }
    verdicts = targets(results, candidates)
    results["targets"] = [t.to_json() for t in verdicts]
    write_results(results, out)
    report(results, verdicts, console)
    return results


def write_results(results: Mapping[str, Any], out: Path) -> None:
    (out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "serving_latency.png")
