"""`vidrec bench events`: the engagement-event path under sustained load, on the real stack.

One run, one machine, the demo artefact dir (or a `test`-profile one built into ``OUT``):
- the real stack (Redis Cluster, prepare, Triton, retrieval, features, recommender) on the
  bench's own ports and run dir, and the real event processor (``python -m vidrec.events
  process``, its own process and metrics port: it does not share the clients' GIL);
- closed-loop httpx clients POSTing batches of valid events (a realistic mix of impressions,
  clicks, watches and likes of the log's users and videos, ``ts`` = now) to
  ``/api/v1/events/engagement``: accepted events/s, p50/p99 per request (a batch is
  acknowledged at once, so that is each event's ingest latency); then one event per request;
- event-to-feature lag under that load, twice: the processor's own
  ``vidrec_event_to_feature_lag_seconds`` histogram (bucket deltas over the load), and probes
  (a watch of a unique video, the user's session polled until it holds it);
- no event lost: events accepted by intake == events the processor applied == stream entries.
Results go to ``OUT/events.json`` and ``OUT/events_latency.png``; the table is printed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from vidrec.config import REPO_ROOT, Config, load_config
from vidrec.features import make_store
from vidrec.features.session import SessionStore
from vidrec.ranking.triton_process import TritonPorts
from vidrec_dev.bench.serving import (
    STACK_SERVICES,
    BenchPorts,
    bench_config,
    closed_loop,
    percentile_ms,
)
from vidrec_dev.stack.runner import Stack
from vidrec_dev.stack.services import stack_env

ENGAGEMENT_PATH = "/api/v1/events/engagement"
# (type, share): most events are impressions; a click or a watch follows a few of them.
EVENT_MIX = (("impression", 0.62), ("click", 0.13), ("watch", 0.20), ("like", 0.05))
SAMPLE_ROWS = 50_000  # (user, video, region, device) rows of the log the events are drawn from
PROBE_VIDEO_BASE = 900_000_000  # probe videos: far above any catalogue id, unique per probe
PROBE_EVERY_S = 0.1
PROBE_POLL_S = 0.002
DRAIN_TIMEOUT_S = 120.0
PORTS = BenchPorts(17301, TritonPorts(http=18300, grpc=18301, metrics=18302),
                   13300, 13301, 13302, 15351, 19664, 19390)  # fmt: skip
PROCESSOR_METRICS_PORT = 19465


@dataclass(frozen=True)
class Scrape:
    """What the bench reads from the processor's /metrics: counters and the lag histogram."""

    processed: float
    failed: float
    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count), +Inf last
    stream_entries: float
    consumer_lag: float

    def since(self, before: Scrape) -> Scrape:
        """The increments between ``before`` and this scrape (gauges: this scrape's value)."""
        deltas = tuple(
            (le, n - m) for (le, n), (_, m) in zip(self.buckets, before.buckets, strict=True)
        )
        return replace(
            self,
            processed=self.processed - before.processed,
            failed=self.failed - before.failed,
            buckets=deltas,
        )


def parse_scrape(text: str) -> Scrape:
    """The processor's metrics from Prometheus exposition text."""
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    streams = lag = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vidrec_event_to_feature_lag_seconds_bucket":
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name == "vidrec_stream_length":
                streams += s.value
            elif s.name == "vidrec_consumer_lag" and s.labels.get("group") == "realtime":
                lag += s.value
            else:
                values[s.name] = values.get(s.name, 0.0) + s.value
    return Scrape(
        processed=values.get("vidrec_events_processed_total", 0.0),
        failed=values.get("vidrec_events_failed_total", 0.0),
        buckets=tuple(sorted(buckets)),
        stream_entries=streams,
        consumer_lag=lag,
    )


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float:
    """Prometheus' ``histogram_quantile``: linear within the bucket holding rank ``q``.

    ``buckets`` are (upper bound, cumulative count), sorted, +Inf last. Ranks in the +Inf
    bucket answer the highest finite bound (a lower bound on the truth); no samples: NaN.
    """
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


def make_events(
    rows: pl.DataFrame, rng: random.Random, n: int, now_ms: int, ids: itertools.count[int]
) -> list[dict[str, Any]]:
    """``n`` valid engagement events of the log's (user, video, region, device) rows."""
    types = rng.choices([t for t, _ in EVENT_MIX], [w for _, w in EVENT_MIX], k=n)
    picks = [rows.row(rng.randrange(rows.height), named=True) for _ in range(n)]
    out = []
    for kind, row in zip(types, picks, strict=True):
        duration = int(row["video_duration_ms"] or 60_000)
        event = {
            "event_id": f"bench-{now_ms}-{next(ids)}",
            "user_id": int(row["user_id"]),
            "video_id": int(row["video_id"]),
            "type": kind,
            "position": rng.randrange(20),
            "video_duration_ms": duration,
            "ts": now_ms,
            "device": row["device"],
            "region": row["region"],
        }
        if kind == "watch":
            event["watch_ms"] = rng.randrange(1_000, max(duration, 1_001))
        out.append(event)
    return out


def events_config(run_dir: Path, artefacts: Path) -> Config:
    """The bench stack config on this bench's ports (clear of `make up` and `bench serving`)."""
    return bench_config(run_dir, artefacts, PORTS)


def artefact_dir(out: Path, console: Console) -> Path:
    """The demo artefacts when built, else a `test`-profile dir built once into ``out``."""
    demo = REPO_ROOT / "artifacts" / "demo"
    if (demo / "manifest.json").is_file():
        return demo
    built = out / "artefacts-test"
    if not (built / "manifest.json").is_file():
        from vidrec.offline.run import run_pipeline

        console.print(f"[bold cyan]▶[/] no artifacts/demo: building a test-profile dir in {built}")
        run_pipeline(profile="test", out=built, seed=7, progress=False, cfg=load_config({}))
    return built


def log_rows(artefacts: Path, seed: int = 0) -> pl.DataFrame:
    """A sample of the log's rows: events of existing users on existing videos."""
    cols = ["user_id", "video_id", "video_duration_ms", "region", "device"]
    log = pl.scan_parquet(artefacts / "data" / "events.parquet").select(cols).head(2_000_000)
    frame = log.collect()
    return frame.sample(min(SAMPLE_ROWS, frame.height), seed=seed)


class Processor:
    """``python -m vidrec.events process`` on the stack's Redis, metrics on its own port."""

    def __init__(self, cfg: Config, artefacts: Path, log: Path, port: int) -> None:
        env = os.environ | stack_env(cfg, artefacts)
        argv = [sys.executable, "-m", "vidrec.events", "process", "--metrics-port", str(port)]
        self.url = f"http://127.0.0.1:{port}/metrics"
        self._log = log.open("w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def scrape(self) -> Scrape:
        return parse_scrape(httpx.get(self.url, timeout=5.0).text)

    def wait_up(self, timeout_s: float = 60.0) -> Scrape:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"event processor exited {self.proc.returncode}; see its log")
            try:
                return self.scrape()
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def drain(self, before: Scrape, accepted: int, timeout_s: float = DRAIN_TIMEOUT_S) -> Scrape:
        """The increments since ``before`` once ``accepted`` events are applied (or timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = self.scrape().since(before)
            if now.processed >= accepted or time.monotonic() > deadline:
                return now
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@dataclass
class Load:
    latencies: list[float]
    accepted: int = 0
    failed_requests: int = 0  # not 202 (429 back-pressure included)
    throttled: int = 0  # 429
    unacked_events: int = 0  # sent in a request that failed: may still have been written


async def ingest(
    http: httpx.AsyncClient,
    url: str,
    rows: pl.DataFrame,
    ids: itertools.count[int],
    batch: int,
    clients: int,
    s: float,
) -> Load:
    """``clients`` closed-loop clients POSTing ``batch`` events per request for ``s`` seconds."""
    load = Load([])

    async def post(rng: random.Random) -> bool:
        events = make_events(rows, rng, batch, time.time_ns() // 1_000_000, ids)
        response = await http.post(url, json=events)
        ok = response.status_code == 202
        load.accepted += int(response.json()["accepted"]) if ok else 0
        load.throttled += response.status_code == 429
        load.unacked_events += 0 if ok else batch
        return ok

    load.latencies, load.failed_requests = await closed_loop(post, clients, s)
    return load


async def probe_lag(
    http: httpx.AsyncClient, url: str, sessions: SessionStore, users: list[int], s: float
) -> tuple[list[float], int]:
    """Post a watch of a unique video, poll the user's session until it holds it: (lags, sent).

    A probe's lag runs from the event's ``ts`` (now) to the first read that sees it: intake,
    stream, processor and the session write. Probes that never show up count as NaN.
    """
    lags: list[float] = []
    sent = 0
    deadline = perf_counter() + s
    rng = random.Random(7)
    while perf_counter() < deadline:
        user, video = rng.choice(users), PROBE_VIDEO_BASE + sent
        start = perf_counter()
        event = {"event_id": f"probe-{time.time_ns()}-{sent}", "user_id": user, "video_id": video}
        event |= {"type": "watch", "watch_ms": 5_000, "ts": time.time_ns() // 1_000_000}
        response = await http.post(url, json=[event])
        sent += response.status_code == 202
        seen = response.status_code != 202
        while not seen and perf_counter() - start < 30.0:
            state = await asyncio.to_thread(sessions.get, user)
            seen = video in state.recent_watches
            if not seen:
                await asyncio.sleep(PROBE_POLL_S)
        lags.append(perf_counter() - start if response.status_code == 202 and seen else math.nan)
        await asyncio.sleep(PROBE_EVERY_S)
    return lags, sent


async def measure(
    cfg: Config, rows: pl.DataFrame, proc: Processor, batch: int, clients: int, duration_s: float,
    console: Console,
) -> tuple[dict[str, float], dict[str, list[float]]]:  # fmt: skip
    url = f"http://127.0.0.1:{cfg.serving.recommender_port}{ENGAGEMENT_PATH}"
    users = sorted({int(u) for u in rows["user_id"]})
    store = make_store(cfg.redis, cfg.features.n_buckets)
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    r: dict[str, float] = {}
    ids = itertools.count()  # event ids unique over the whole run
    try:
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
            zero = proc.scrape()
            warm = await ingest(http, url, rows, ids, batch, 1, 1.0)  # connect, warm up
            proc.drain(zero, warm.accepted)
            base = proc.scrape()  # the figures below count from here
            console.print(f"  {clients} clients × {batch} events/request, {duration_s:.0f} s …")
            load, (probes, probes_sent) = await asyncio.gather(
                ingest(http, url, rows, ids, batch, clients, duration_s),
                probe_lag(http, url, SessionStore(store), users, duration_s),
            )
            at_end = proc.scrape().since(base)  # what the processor kept up with
            under_load = await asyncio.to_thread(proc.drain, base, load.accepted + probes_sent)
            single_s = max(duration_s / 3, 2.0)
            console.print(f"  {clients} clients × 1 event/request, {single_s:.0f} s …")
            single = await ingest(http, url, rows, ids, 1, clients, single_s)
        accepted = load.accepted + probes_sent + single.accepted
        total = await asyncio.to_thread(proc.drain, base, accepted)
    finally:
        store.close()
    found = [p for p in probes if not math.isnan(p)]
    r |= {
        "batch": float(batch),
        "clients": float(clients),
        "ingest.events_per_s": load.accepted / duration_s,
        "ingest.requests_per_s": len(load.latencies) / duration_s,
        "ingest.p50_ms": percentile_ms(load.latencies, 50),
        "ingest.p99_ms": percentile_ms(load.latencies, 99),
        "ingest.failed_requests": float(load.failed_requests),
        "ingest.throttled_429": float(load.throttled),
        "single.events_per_s": single.accepted / single_s,
        "single.p50_ms": percentile_ms(single.latencies, 50),
        "single.p99_ms": percentile_ms(single.latencies, 99),
        "single.failed_requests": float(single.failed_requests),
        "processor.events_per_s_under_load": at_end.processed / duration_s,
        "ingest_vs_processor": (load.accepted / duration_s)
        / max(at_end.processed / duration_s, 1e-9),
        "batching_speedup": (load.accepted / duration_s) / max(single.accepted / single_s, 1e-9),
        "lag.hist.p50_ms": histogram_quantile(under_load.buckets, 0.50) * 1000,
        "lag.hist.p99_ms": histogram_quantile(under_load.buckets, 0.99) * 1000,
        "lag.hist.samples": under_load.buckets[-1][1] if under_load.buckets else 0.0,
        "lag.probe.p50_ms": percentile_ms(found, 50),
        "lag.probe.p99_ms": percentile_ms(found, 99),
        "lag.probe.n": float(len(found)),
        "lag.probe.missing": float(len(probes) - len(found)),
        "check.accepted": float(accepted),
        "check.processed": total.processed,
        "check.stream_entries": total.stream_entries - base.stream_entries,
        "check.consumer_lag": total.consumer_lag,
        "check.processor_failed": total.failed,
        # A request that timed out (503) may have been written all the same: at-least-once.
        "check.unacked_events": float(load.unacked_events + single.unacked_events),
        "check.lost": max(float(accepted) - total.processed, 0.0),
    }
    series = {"batch": load.latencies, "single": single.latencies, "probe": found}
    return r, series


def plot(series: dict[str, list[float]], batch: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = {
        "batch": f"POST, {batch} events/request",
        "single": "POST, 1 event/request",
        "probe": "event → session (probe)",
    }
    top = max((max(v) for v in series.values() if v), default=1.0) * 1000
    bins = np.logspace(np.log10(0.5), np.log10(max(top, 1.0)), 60).tolist()
    for key, values in series.items():
        if values:
            ax.hist(
                np.asarray(values) * 1000, bins=bins, histtype="step", lw=1.5, label=labels[key]
            )
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests / probes")
    ax.set_title("engagement events: ingest latency and event-to-feature lag")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(r: dict[str, float], console: Console) -> None:
    table = Table("figure", "value", title="event ingestion benchmarks", title_justify="left")
    for key, value in r.items():
        table.add_row(key, f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}")
    console.print(table)
    verdict = (
        "[green]none lost[/]" if r["check.lost"] == 0 else f"[red]{r['check.lost']:.0f} lost[/]"
    )
    console.print(
        f"accepted {r['check.accepted']:,.0f} · processed {r['check.processed']:,.0f} · "
        f"stream entries {r['check.stream_entries']:,.0f} (of which in failed requests: "
        f"≤ {r['check.unacked_events']:,.0f}) → {verdict}"
    )


def run(
    out: Path, duration_s: float = 20.0, batch: int = 100, clients: int = 8
) -> dict[str, float]:
    """Start the stack and the processor, measure ingestion and lag, write JSON + PNG, print."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    artefacts = artefact_dir(out, console)
    cfg = events_config(out / "run", artefacts)
    rows = log_rows(artefacts)
    stack = Stack(cfg, artefacts, console)
    proc: Processor | None = None
    try:
        console.print("[bold cyan]▶[/] stack: redis cluster, prepare, triton, services …")
        stack.up(only=STACK_SERVICES, progress=False)
        proc = Processor(cfg, artefacts, out / "run" / "processor.log", PROCESSOR_METRICS_PORT)
        proc.wait_up()
        console.print("[bold cyan]▶[/] engagement events over HTTP, processor running")
        results, series = asyncio.run(measure(cfg, rows, proc, batch, clients, duration_s, console))
    finally:
        if proc is not None:
            proc.stop()
        stack.down()
    (out / "events.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(series, batch, out / "events_latency.png")
    report(results, console)
    return results
