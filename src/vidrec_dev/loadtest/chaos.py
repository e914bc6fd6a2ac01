"""`vidrec chaos`: faults injected into the real stack under Locust load, one scenario at a time.

Each scenario runs Locust (HTTP mix, events included) for ``duration_s``; at ``fault_at_s`` the
fault is injected, at ``undo_at_s`` it is undone (the service restarted, the process resumed),
and the run goes on. Then the run's accepted events are accounted: every event answered 202
must be applied by the processor (its ``evu`` marker exists) and be in the lake (its
``event_id`` in a Parquet file) — events lost must be 0. Per scenario:

- error rate (failed requests / requests) and the 5xx rate (server errors / requests), the
  latter judged against the scenario's budget;
- degraded-answer rate while the fault lasts (answers served ``degraded``: still 200s);
- p99 over the run and during the fault;
- recovery time: from the undo until the first ``HEALTHY_RUN_S``-second window with no failed
  request and no more degraded answers than before the fault (+15 points);
- events accepted, processed, in the lake, lost.

Scenarios: ``prometheus`` (SIGSTOP the server, SIGCONT it: nothing on the request path may
depend on it), ``triton`` (SIGKILL its process tree, start it again), ``processor`` (SIGKILL
the event processor, start it again: its pending entries are claimed), ``redis-master``
(SIGKILL one of the three masters, start it again; that master runs with AOF, as a production
master does — or has a replica — so it comes back with its data), ``overload`` (a second
Locust adds twice the users of the capacity step, with its think time, on top of the steady
load: at least twice the measured capacity is offered).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import redis
from rich.console import Console
from rich.table import Table

from vidrec_dev.loadtest.locust_run import LocustProcess, LocustSpec
from vidrec_dev.loadtest.report import plot_timeline
from vidrec_dev.loadtest.sla import DEFAULT_SLA, Sla
from vidrec_dev.loadtest.stack import EventAccount, LoadStack, account_events
from vidrec_dev.loadtest.timeline import Second, between, merge_timelines, window
from vidrec_dev.stack.process import group_members
from vidrec_dev.stack.services import CLUSTER_MASTERS
from vidrec_dev.stack.services import _redis_server_args as redis_server_args

HEALTHY_RUN_S = 3
DEGRADED_SLACK = 0.15  # degraded share above the pre-fault level still called healthy
SETTLE_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0  # accepted events must be applied and in the lake by then


@dataclass(frozen=True)
class Timing:
    duration_s: float = 60.0
    fault_at_s: float = 15.0
    undo_at_s: float = 35.0


DEFAULT_TIMING = Timing()


def _signal_tree(pgid: int, sig: signal.Signals) -> None:
    for pid in group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class Fault:
    """Base: ``prepare`` before the load, ``inject``, ``undo``, ``cleanup`` after the run."""

    name = ""
    what = ""
    server_error_budget = 0.001  # 5xx / requests over the whole scenario

    def prepare(self, stack: LoadStack) -> None:
        return None

    def inject(self, stack: LoadStack) -> None:
        raise NotImplementedError

    def undo(self, stack: LoadStack) -> None:
        raise NotImplementedError

    def cleanup(self, stack: LoadStack) -> None:
        return None

    def extra_runs(self) -> list[LocustProcess]:
        return []


def _cluster_ok(port: int) -> bool:
    node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0)
    try:
        return bool(node.cluster("info").get("cluster_state") == "ok")
    except (redis.RedisError, OSError):
        return False
    finally:
        node.close()


class StallPrometheus(Fault):
    name = "prometheus"
    what = "Prometheus stalled (SIGSTOP), then resumed (SIGCONT)"

    def inject(self, stack: LoadStack) -> None:
        _signal_tree(stack.pid("prometheus"), signal.SIGSTOP)

    def undo(self, stack: LoadStack) -> None:
        _signal_tree(stack.pid("prometheus"), signal.SIGCONT)

    def cleanup(self, stack: LoadStack) -> None:
        with contextlib.suppress(RuntimeError):
            self.undo(stack)


class KillService(Fault):
    """SIGKILL a service's whole process tree (a crash), then start it again."""

    def __init__(self, service: str, name: str, what: str, budget: float = 0.001) -> None:
        self.service, self.name, self.what = service, name, what
        self.server_error_budget = budget

    def inject(self, stack: LoadStack) -> None:
        _signal_tree(stack.pid(self.service), signal.SIGKILL)

    def undo(self, stack: LoadStack) -> None:
        stack.restart(self.service)


class KillRedisMaster(Fault):
    """SIGKILL the first Redis Cluster master and start it again with its data.

    The masters run without persistence; before the load this one turns AOF on (``CONFIG
    SET appendonly yes``: a rewrite snapshots what it holds, then every write is appended
    before it is acknowledged), so the restarted server loads everything it acknowledged.
    """

    name = "redis-master"
    what = "a Redis Cluster master killed (SIGKILL), restarted with its AOF"
    server_error_budget = 0.05  # intake to the dead master's partitions fails while it is down

    def __init__(self) -> None:
        self.argv: list[str] = []
        self.pid = 0
        self.restarted: subprocess.Popen[bytes] | None = None
        self.port = 0

    def _node(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)

    def prepare(self, stack: LoadStack) -> None:
        self.port = stack.cfg.stack.redis_base_port
        node = self._node()
        try:
            node.config_set("appendonly", "yes")  # only this master: it alone writes the AOF
            deadline = time.monotonic() + 60
            while True:
                p = node.info("persistence")
                busy = p.get("aof_rewrite_in_progress") or p.get("aof_rewrite_scheduled")
                if p.get("aof_enabled") == 1 and not busy:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis {self.port}: the AOF rewrite did not finish")
                time.sleep(0.2)
            self.pid = int(node.info("server")["process_id"])
            data_dir = Path(str(node.config_get("dir")["dir"]))
        finally:
            node.close()
        # The stack's own command line for this master (redis rewrites its /proc cmdline).
        args = redis_server_args(self.port, data_dir, True)
        i = args.index("--appendonly")
        self.argv = [*args[: i + 1], "yes", *args[i + 2 :]]

    def inject(self, stack: LoadStack) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def undo(self, stack: LoadStack) -> None:
        log = (stack.run_dir / "logs" / f"redis-{self.port}-restarted.log").open("ab")
        self.restarted = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        ports = [self.port + i for i in range(CLUSTER_MASTERS)]
        while not all(_cluster_ok(port) for port in ports):  # every master agrees again
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis {self.port} did not rejoin the cluster")
            time.sleep(0.1)

    def cleanup(self, stack: LoadStack) -> None:
        """Nothing: the restarted master serves the rest of the run; :func:`stop_restarted`
        ends it when the stack goes down (it is not in the stack's process group)."""

    def stop_restarted(self) -> None:
        if self.restarted is not None and self.restarted.poll() is None:
            self.restarted.terminate()
            try:
                self.restarted.wait(10)
            except subprocess.TimeoutExpired:
                self.restarted.kill()
                self.restarted.wait()


class Overload(Fault):
    """A second Locust process adds users between the fault and the undo."""

    name = "overload"
    what = "2 × capacity offered on top (a second Locust: twice the capacity step's users)"
    server_error_budget = 0.01

    def __init__(self, extra_users: int, spec_for: Callable[[int, float, str], LocustSpec]) -> None:
        self.extra_users = extra_users
        self.spec_for = spec_for
        self.run_s = 0.0
        self.proc: LocustProcess | None = None

    def inject(self, stack: LoadStack) -> None:
        self.proc = LocustProcess(self.spec_for(self.extra_users, self.run_s, "overload-extra"))

    def undo(self, stack: LoadStack) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.proc.wait(self.run_s + 40)

    def extra_runs(self) -> list[LocustProcess]:
        return [self.proc] if self.proc is not None else []


@dataclass(frozen=True)
class Outcome:
    scenario: str
    what: str
    users: int
    requests: int
    error_rate: float
    server_error_rate: float
    server_error_budget: float
    degraded_rate_fault: float
    degraded_rate_before: float
    p99_ms: float
    p99_fault_ms: float
    recovery_s: float | None  # None: not healthy again before the load ended
    undo_s: float  # how long undoing the fault took (restart until healthy)
    events: EventAccount
    # When accepted events were still unapplied after the drain: the account once the event
    # processor was restarted (stuck vs lost: the entries wait in their streams).
    events_after_restart: EventAccount | None
    injected_at: float
    undone_at: float
    notes: list[str] = field(default_factory=list)

    @property
    def within_budget(self) -> bool:
        return self.server_error_rate <= self.server_error_budget

    @property
    def events_lost(self) -> int:
        return self.events.lost

    @property
    def recovered(self) -> bool:
        return self.recovery_s is not None

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "events_lost": self.events_lost,
            "within_budget": self.within_budget,
        }


def recovery_time(
    timeline: Sequence[Second], undone_at: float, baseline_degraded: float, ended_at: float
) -> float | None:
    """Seconds from ``undone_at`` to the start of the first HEALTHY_RUN_S-second window with no
    failed request and no more degraded answers than before the fault (+ DEGRADED_SLACK)."""
    limit = (0.0 if math.isnan(baseline_degraded) else baseline_degraded) + DEGRADED_SLACK
    after = [s for s in timeline if math.floor(undone_at) <= s.t < math.floor(ended_at)]
    for i in range(len(after) - HEALTHY_RUN_S + 1):
        run = after[i : i + HEALTHY_RUN_S]
        if run[-1].t - run[0].t != HEALTHY_RUN_S - 1:
            continue  # a second without any request in between
        w = window(run)
        degraded = w.degraded / w.answers if w.answers else 0.0
        if w.requests > 0 and w.failures == 0 and degraded <= limit:
            return max(run[0].t - undone_at, 0.0)
    return None


def settle(stack: LoadStack, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
    """Wait until the stack is healthy and a home feed is answered undegraded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = stack.stack.status()
        if rows and all(r.alive and r.healthy is not False for r in rows if r.pid is not None):
            try:
                body = httpx.get(
                    f"{stack.http}/api/v1/recommendations/home",
                    params={"user_id": 1, "count": 10},
                    timeout=10,
                ).json()
                if not body.get("degraded"):
                    return True
            except (httpx.HTTPError, ValueError):
                pass
        time.sleep(1.0)
    return False


def run_scenario(
    stack: LoadStack,
    fault: Fault,
    spec_for: Callable[[int, float, str], LocustSpec],
    users: int,
    timing: Timing,
    out: Path,
    console: Console,
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
) -> Outcome:
    notes: list[str] = []
    if not settle(stack):
        notes.append("stack not settled (degraded answers) before the run")
    fault.prepare(stack)
    if isinstance(fault, Overload):
        fault.run_s = timing.undo_at_s - timing.fault_at_s
    main = LocustProcess(spec_for(users, timing.duration_s, fault.name))
    t0 = main.started_at
    injected = undone = math.nan
    undo_s = 0.0
    try:
        console.print(f"  [bold]{fault.name}[/]: {fault.what}")
        time.sleep(max(t0 + timing.fault_at_s - time.time(), 0))
        injected = time.time()
        fault.inject(stack)
        console.print(f"    fault injected at {injected - t0:.1f} s")
        time.sleep(max(t0 + timing.undo_at_s - time.time(), 0))
        start_undo = time.time()
        fault.undo(stack)
        undone = time.time()
        undo_s = undone - start_undo
        console.print(f"    undone at {undone - t0:.1f} s (took {undo_s:.1f} s)")
        result = main.wait()
        extra = [p.wait() for p in fault.extra_runs()]
    finally:
        main.stop()
        for p in fault.extra_runs():
            p.stop()
        fault.cleanup(stack)
    s = result.summary
    timeline = merge_timelines(s.timeline, *(e.summary.timeline for e in extra))
    accepted = [*s.accepted_events, *(ev for e in extra for ev in e.summary.accepted_events)]
    before = window(between(timeline, t0 + 3, injected))
    during = window(between(timeline, injected, undone))
    whole = window(timeline)
    recovery = recovery_time(timeline, undone, before.degraded_ratio, s.ended_at)
    events = account_events(stack, accepted, "chaos-", drain_timeout_s)
    after_restart = None
    if events.processed < events.accepted and "process" in stack.pids():
        _signal_tree(stack.pid("process"), signal.SIGKILL)
        stack.restart("process")
        after_restart = account_events(stack, accepted, "chaos-", drain_timeout_s)
        notes.append(
            f"{events.accepted - events.processed} accepted events not applied after "
            f"{events.drain_s:.0f} s (processor stuck); after a processor restart "
            f"{after_restart.processed} of {after_restart.accepted} were"
        )
    outcome = Outcome(
        scenario=fault.name,
        what=fault.what,
        users=users + sum(e.summary.users for e in extra),
        requests=whole.requests,
        error_rate=whole.fail_ratio,
        server_error_rate=whole.server_error_ratio,
        server_error_budget=fault.server_error_budget,
        degraded_rate_fault=during.degraded_ratio,
        degraded_rate_before=before.degraded_ratio,
        p99_ms=whole.p99_ms,
        p99_fault_ms=during.p99_ms,
        recovery_s=recovery,
        undo_s=undo_s,
        events=events,
        events_after_restart=after_restart,
        injected_at=injected,
        undone_at=undone,
        notes=notes,
    )
    plot_timeline(
        timeline,
        out / f"chaos-{fault.name}.png",
        sla=s.sla,
        origin=t0,
        title=f"{fault.name}: {fault.what}",
        marks=[(injected, "fault"), (undone, "undone")],
    )
    return outcome


def make_faults(
    names: Sequence[str], overload_users: int, spec_for: Callable[[int, float, str], LocustSpec]
) -> list[Fault]:
    known: dict[str, Callable[[], Fault]] = {
        "prometheus": StallPrometheus,
        "triton": lambda: KillService("triton", "triton", "Triton killed (SIGKILL), restarted"),
        "processor": lambda: KillService(
            "process", "processor", "event processor killed (SIGKILL), restarted"
        ),
        "redis-master": KillRedisMaster,
        "overload": lambda: Overload(overload_users, spec_for),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return [known[n]() for n in names]


SCENARIOS = ("prometheus", "triton", "processor", "overload", "redis-master")


def run_chaos(
    stack: LoadStack,
    out: Path,
    scenarios: Sequence[str] = SCENARIOS,
    users: int = 8,
    overload_users: int = 16,
    overload_think_ms: float = 100.0,
    timing: Timing = DEFAULT_TIMING,
    think_ms: float = 500.0,
    users_file: Path | None = None,
    sla: Sla = DEFAULT_SLA,
    console: Console | None = None,
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
) -> list[Outcome]:
    """Every scenario in order on one stack; chaos.json and one PNG per scenario in ``out``."""
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)

    def spec_for(n: int, run_s: float, name: str) -> LocustSpec:
        return LocustSpec(
            host=stack.http,
            users=n,
            run_time_s=run_s,
            out_prefix=out / name,
            sla=sla,
            think_ms=overload_think_ms if name == "overload-extra" else think_ms,
            users_file=users_file,
            run_tag=f"chaos-{name}-{int(time.time())}",
            html=False,
            plot=False,
        )

    faults = make_faults(scenarios, overload_users, spec_for)
    outcomes: list[Outcome] = []
    try:
        for fault in faults:
            outcomes.append(
                run_scenario(stack, fault, spec_for, users, timing, out, console, drain_timeout_s)
            )
            o = outcomes[-1]
            console.print(
                f"    5xx {o.server_error_rate:.2%} (budget {o.server_error_budget:.1%}), "
                f"degraded {o.degraded_rate_fault:.0%} during the fault, recovery "
                f"{'—' if o.recovery_s is None else f'{o.recovery_s:.0f} s'}, "
                f"events lost {o.events_lost} of {o.events.accepted}"
            )
            for note in o.notes:
                console.print(f"    [yellow]note:[/] {note}")
            (out / "chaos.json").write_text(
                json.dumps([x.to_json() for x in outcomes], indent=2) + "\n"
            )
    finally:
        for fault in faults:
            if isinstance(fault, KillRedisMaster):
                fault.stop_restarted()
    return outcomes


def report(outcomes: Sequence[Outcome], console: Console) -> None:
    table = Table(
        "scenario",
        "requests",
        "errors",
        "5xx (budget)",
        "degraded in fault",
        "p99 / in fault ms",
        "recovery s",
        "events acc/proc/lake",
        "lost",
        title="chaos under load",
        title_justify="left",
    )
    for o in outcomes:
        budget = "[green]ok[/]" if o.within_budget else "[red]over[/]"
        table.add_row(
            o.scenario,
            f"{o.requests:,}",
            f"{o.error_rate:.2%}",
            f"{o.server_error_rate:.2%} ({o.server_error_budget:.1%}) {budget}",
            f"{o.degraded_rate_fault:.0%}",
            f"{o.p99_ms:.0f} / {o.p99_fault_ms:.0f}",
            "not recovered" if o.recovery_s is None else f"{o.recovery_s:.0f}",
            f"{o.events.accepted}/{o.events.processed}/{o.events.in_lake}",
            "[green]0[/]" if o.events_lost == 0 else f"[red]{o.events_lost}[/]",
        )
    console.print(table)
