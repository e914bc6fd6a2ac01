"""`vidrec bench soak`: a long steady run; each service's memory (RSS start → end) and the
latency drift between the first and the last minutes.

RSS is sampled every ``sample_s`` for every stack service's whole process tree (BentoML
workers and Triton's python-backend stubs included). Drift compares p50/p99 of the first
``edge_s`` seconds after warm-up with the last ``edge_s`` seconds. The run's accepted events
are accounted at the end like in the chaos runs (events lost must be 0).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vidrec_dev.loadtest.locust_run import LocustProcess, LocustSpec
from vidrec_dev.loadtest.report import plot_soak
from vidrec_dev.loadtest.sla import DEFAULT_SLA, Sla
from vidrec_dev.loadtest.stack import EventAccount, LoadStack, account_events, service_rss
from vidrec_dev.loadtest.timeline import between, window


@dataclass(frozen=True)
class Soak:
    duration_s: float
    users: int
    requests: int
    rps: float
    fail_ratio: float
    degraded_ratio: float
    p99_ms: float
    first_p50_ms: float
    first_p99_ms: float
    last_p50_ms: float
    last_p99_ms: float
    rss_start_mib: dict[str, float]
    rss_end_mib: dict[str, float]
    rss_peak_mib: dict[str, float]
    events: EventAccount
    sla_passed: bool

    @property
    def p99_drift(self) -> float:
        return self.last_p99_ms / self.first_p99_ms if self.first_p99_ms else float("nan")

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "p99_drift": self.p99_drift, "events_lost": self.events.lost}


def soak(
    stack: LoadStack,
    out: Path,
    duration_s: float = 600.0,
    users: int = 8,
    think_ms: float = 500.0,
    sla: Sla = DEFAULT_SLA,
    users_file: Path | None = None,
    sample_s: float = 10.0,
    warmup_s: float = 30.0,
    edge_s: float = 60.0,
    console: Console | None = None,
) -> Soak:
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    pids = stack.pids()
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in pids}

    def sample() -> dict[str, float]:
        now, rss = time.time(), service_rss(pids)
        for name, mib in rss.items():
            samples[name].append((now, mib))
        return rss

    start_rss = sample()
    tag = f"soak{int(time.time())}"
    spec = LocustSpec(
        host=stack.http,
        users=users,
        run_time_s=duration_s,
        out_prefix=out / "soak",
        sla=sla,
        think_ms=think_ms,
        users_file=users_file,
        run_tag=tag,
    )
    proc = LocustProcess(spec)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            job = bar.add_task(f"soak, {users} users", total=duration_s)
            next_sample = time.time() + sample_s
            while proc.proc.poll() is None:
                if time.time() >= next_sample:
                    rss = sample()
                    next_sample += sample_s
                    bar.update(
                        job, description=f"soak, {users} users, RSS {sum(rss.values()):,.0f} MiB"
                    )
                bar.update(job, completed=min(time.time() - proc.started_at, duration_s))
                time.sleep(0.5)
        end_rss = sample()
        result = proc.wait()
    finally:
        proc.stop()
    s = result.summary
    first = window(between(s.timeline, s.started_at + warmup_s, s.started_at + warmup_s + edge_s))
    last = window(between(s.timeline, s.ended_at - edge_s - 1, s.ended_at - 1))
    whole = window(s.timeline)
    events = account_events(stack, s.accepted_events, tag)
    r = Soak(
        duration_s=duration_s,
        users=users,
        requests=s.requests,
        rps=whole.rps,
        fail_ratio=s.fail_ratio,
        degraded_ratio=whole.degraded_ratio,
        p99_ms=s.p99_ms,
        first_p50_ms=first.p50_ms,
        first_p99_ms=first.p99_ms,
        last_p50_ms=last.p50_ms,
        last_p99_ms=last.p99_ms,
        rss_start_mib=start_rss,
        rss_end_mib=end_rss,
        rss_peak_mib={n: max(m for _, m in v) for n, v in samples.items() if v},
        events=events,
        sla_passed=result.passed,
    )
    (out / "soak.json").write_text(json.dumps(r.to_json(), indent=2) + "\n")
    (out / "soak_rss.json").write_text(json.dumps(samples) + "\n")
    title = (
        f"soak {duration_s / 60:.0f} min, {users} users: p99 first {edge_s:.0f} s "
        f"{r.first_p99_ms:.0f} ms → last {r.last_p99_ms:.0f} ms"
    )
    plot_soak(samples, s.timeline, out / "soak.png", title)
    return r


def report(r: Soak, console: Console) -> None:
    table = Table(
        "service",
        "RSS start MiB",
        "RSS end MiB",
        "change",
        "peak MiB",
        title=f"soak: {r.duration_s / 60:.1f} min at {r.users} users, {r.rps:.1f} req/s",
        title_justify="left",
    )
    for name in r.rss_start_mib:
        a, b = r.rss_start_mib[name], r.rss_end_mib.get(name, 0.0)
        table.add_row(
            name,
            f"{a:,.0f}",
            f"{b:,.0f}",
            f"{b - a:+,.0f} ({(b - a) / max(a, 1e-9):+.1%})",
            f"{r.rss_peak_mib.get(name, 0.0):,.0f}",
        )
    console.print(table)
    console.print(
        f"latency: p50 {r.first_p50_ms:.1f} → {r.last_p50_ms:.1f} ms, p99 "
        f"{r.first_p99_ms:.1f} → {r.last_p99_ms:.1f} ms (×{r.p99_drift:.2f}); "
        f"whole run p99 {r.p99_ms:.0f} ms, failed {r.fail_ratio:.3%}, "
        f"degraded {r.degraded_ratio:.1%}; SLA {'passed' if r.sla_passed else 'broken'}"
    )
    e = r.events
    console.print(
        f"events: accepted {e.accepted:,}, processed {e.processed:,}, in lake "
        f"{e.in_lake:,} → lost {e.lost}"
    )
