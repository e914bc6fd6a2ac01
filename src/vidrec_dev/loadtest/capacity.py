"""`vidrec bench capacity`: ramp Locust users until they break the SLA; the highest sustained
req/s on this machine, and per core.

A warm-up run (not judged) fills the caches first. Each step is then its own headless Locust
run of ``step_s`` seconds with every user spawned at once (short think time: each user is a
busy client); its first ``warmup_s`` seconds (connections, spawn) are left out and the rest is
judged against the SLA with the Locust gate's own :func:`~vidrec_dev.loadtest.sla.judge` (p99,
failure ratio and degraded share of that window, from the per-second timeline): a rate served
by degrading answers is not a capacity.
The ramp stops after ``patience`` steps in a row break it (one noisy step on a shared machine
does not end it); the capacity is the highest req/s of a step that met it. Everything, Locust
included, shares this machine's cores: per core = req/s ÷ ``os.cpu_count()``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vidrec_dev.loadtest.locust_run import LocustSpec, run_locust
from vidrec_dev.loadtest.report import plot_capacity
from vidrec_dev.loadtest.sla import DEFAULT_SLA, Sla, judge
from vidrec_dev.loadtest.timeline import RunSummary, between, window

DEFAULT_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


@dataclass(frozen=True)
class Step:
    users: int
    rps: float
    p50_ms: float
    p99_ms: float
    fail_ratio: float
    degraded_ratio: float
    requests: int
    passed: bool
    loadavg_1m: float = 0.0  # the machine's 1-minute load average when the step ended
    reasons: tuple[str, ...] = ()  # why it broke the SLA


@dataclass(frozen=True)
class Capacity:
    sla: Sla
    steps: tuple[Step, ...]
    cores: int
    think_ms: float
    step_s: float

    @property
    def best(self) -> Step | None:
        ok = [s for s in self.steps if s.passed]
        return max(ok, key=lambda s: s.rps) if ok else None

    @property
    def rps(self) -> float:
        return self.best.rps if self.best else 0.0

    @property
    def rps_per_core(self) -> float:
        return self.rps / self.cores

    def to_json(self) -> dict[str, object]:
        return {
            "sla": asdict(self.sla),
            "cores": self.cores,
            "think_ms": self.think_ms,
            "step_s": self.step_s,
            "capacity_rps": self.rps,
            "capacity_rps_per_core": self.rps_per_core,
            "capacity_users": self.best.users if self.best else 0,
            "steps": [asdict(s) for s in self.steps],
        }


def judge_step(summary: RunSummary, users: int, sla: Sla, warmup_s: float) -> Step:
    """The step's steady window (after warm-up, whole seconds only) against the SLA."""
    steady = between(summary.timeline, summary.started_at + warmup_s, math.floor(summary.ended_at))
    w = window(steady, span_s=len(steady) or None)
    verdict = judge(w.p99_ms, w.fail_ratio, w.requests, sla, degraded_ratio=w.degraded_ratio)
    return Step(
        users,
        w.rps,
        w.p50_ms,
        w.p99_ms,
        w.fail_ratio,
        w.degraded_ratio,
        w.requests,
        verdict.passed,
        reasons=verdict.reasons,
    )


def ramp(
    host: str,
    out: Path,
    sla: Sla = DEFAULT_SLA,
    steps: Sequence[int] = DEFAULT_STEPS,
    step_s: float = 30.0,
    warmup_s: float = 5.0,
    think_ms: float = 100.0,
    users_file: Path | None = None,
    mix: str = "",
    api_key: str = "",
    console: Console | None = None,
    stack_warmup_s: float = 20.0,
    patience: int = 2,
) -> Capacity:
    """Warm the stack up (caches, connections, JIT-free but cold LRUs: not judged), then run
    the steps in order until one breaks the SLA; write capacity.json and the PNG."""
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    if stack_warmup_s > 0:
        warm = LocustSpec(
            host=host,
            users=max(steps[0], 4),
            run_time_s=stack_warmup_s,
            out_prefix=out / "warmup",
            sla=sla,
            think_ms=think_ms,
            users_file=users_file,
            mix=mix,
            api_key=api_key,
            run_tag="capwarm",
            html=False,
            plot=False,
        )
        run_locust(warm, console, "warm-up (not judged)")
    done: list[Step] = []
    broken = 0
    for users in steps:
        spec = LocustSpec(
            host=host,
            users=users,
            run_time_s=step_s,
            out_prefix=out / f"step-{users:03d}",
            sla=sla,
            think_ms=think_ms,
            users_file=users_file,
            mix=mix,
            api_key=api_key,
            run_tag=f"cap{users}",
            html=False,
            plot=False,
        )
        result = run_locust(spec, console, f"{users} users")
        step = replace(
            judge_step(result.summary, users, sla, warmup_s), loadavg_1m=os.getloadavg()[0]
        )
        done.append(step)
        mark = (
            "[green]meets SLA[/]"
            if step.passed
            else f"[red]breaks SLA[/] ({'; '.join(step.reasons)})"
        )
        console.print(
            f"  {users:3d} users: {step.rps:6.1f} req/s, p50 {step.p50_ms:6.1f} ms, "
            f"p99 {step.p99_ms:7.1f} ms, failed {step.fail_ratio:.2%}, "
            f"degraded {step.degraded_ratio:.2%}, load avg {step.loadavg_1m:.1f} → {mark}"
        )
        broken = 0 if step.passed else broken + 1
        if broken >= patience:
            break
    cap = Capacity(sla, tuple(done), os.cpu_count() or 1, think_ms, step_s)
    (out / "capacity.json").write_text(json.dumps(cap.to_json(), indent=2) + "\n")
    title = (
        f"capacity: {cap.rps:.1f} req/s ({cap.rps_per_core:.1f} per core, {cap.cores} cores) "
        f"at {sla.describe()}"
    )
    plot_capacity([asdict(s) for s in done], sla, out / "capacity.png", title)
    return cap


def report(cap: Capacity, console: Console) -> None:
    table = Table(
        "users",
        "req/s",
        "p50 ms",
        "p99 ms",
        "failed",
        "degraded",
        "load avg",
        "SLA",
        title=f"capacity ramp — SLA {cap.sla.describe()}",
        title_justify="left",
    )
    for s in cap.steps:
        table.add_row(
            str(s.users),
            f"{s.rps:.1f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            f"{s.fail_ratio:.2%}",
            f"{s.degraded_ratio:.2%}",
            f"{s.loadavg_1m:.1f}",
            "[green]meets[/]" if s.passed else "[red]breaks[/]",
        )
    console.print(table)
    if cap.best is None:
        console.print("[red]no step met the SLA[/]")
    else:
        console.print(
            f"highest sustained: [bold]{cap.rps:.1f} req/s[/] at {cap.best.users} users "
            f"= [bold]{cap.rps_per_core:.1f} req/s per core[/] ({cap.cores} cores, "
            "load generator included)"
        )
