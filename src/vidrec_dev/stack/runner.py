"""Start, stop and inspect the local stack: the real servers on one machine.

``up`` is idempotent: a service already recorded as running and healthy is kept, a missing
or dead one is (re)started, and a running but unhealthy one is refused (``down`` first).
So ``up --only redis`` followed by ``up --only triton`` grows one stack. A one-shot step
(``prepare``) is re-run only when one of its dependencies was (re)started by this call.
``up`` ends by asking every recorded service again and raises when one is down or unhealthy
(after a short grace for a probe that just timed out), so ``make up`` exits non-zero exactly
when the table it prints shows a service that is not healthy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table

from vidrec.config import Config
from vidrec_dev.stack.health import health_from_json, health_to_json
from vidrec_dev.stack.process import (
    ManagedProcess,
    ServiceSpec,
    StackError,
    group_members,
    log_path,
    stop_group,
)
from vidrec_dev.stack.run_record import (
    ServiceState,
    StackState,
    read_stack_state,
    state_path,
    write_stack_state,
)
from vidrec_dev.stack.services import SERVICE_NAMES, build_plan, stack_env

# A service that fails its probe at the end of ``up`` is asked again for this long before it
# is called unhealthy: one probe's 1 s timeout on two busy cores is not an outage.
SETTLE_S = 5.0
SETTLE_POLL_S = 0.5


class ServiceStatus(NamedTuple):
    service: str
    pid: int | None
    alive: bool
    healthy: bool | None  # None: no serialisable health check to ask
    url: str

    @property
    def ok(self) -> bool:
        """Done (a one-shot step) or running and not failing its health check."""
        if self.pid is None:
            return bool(self.healthy)
        return self.alive and self.healthy is not False


def _status_of(svc: ServiceState) -> ServiceStatus:
    if svc.oneshot:
        return ServiceStatus(svc.name, None, False, True, svc.url)
    alive = svc.pid is not None and bool(group_members(svc.pid))
    check = health_from_json(svc.health)
    healthy = None if check is None else alive and check()
    return ServiceStatus(svc.name, svc.pid, alive, healthy, svc.url)


def status_table(rows: Iterable[ServiceStatus]) -> Table:
    table = Table("service", "url", "pid", "status", title="vidrec local stack")
    for row in rows:
        if row.pid is None and row.healthy:
            text = "[green]done[/]"
        elif not row.alive:
            text = "[red]stopped[/]"
        elif row.healthy is False:
            text = "[yellow]unhealthy[/]"
        else:
            text = "[green]healthy[/]" if row.healthy else "running"
        table.add_row(row.service, row.url, "" if row.pid is None else str(row.pid), text)
    return table


class Stack:
    """The stack ``cfg`` describes, over one artefact dir; files go to ``cfg.stack.run_dir``."""

    def __init__(self, cfg: Config, artefacts_dir: Path, console: Console | None = None) -> None:
        self.cfg = cfg
        self.artefacts_dir = Path(artefacts_dir).resolve()  # services run in the run dir
        self.run_dir = cfg.stack.run_dir
        self.console = console or Console()
        self._procs: dict[str, ManagedProcess] = {}  # started by this object: stop via Popen

    def _load_state(self) -> StackState:
        return read_stack_state(self.run_dir) or StackState(
            str(self.run_dir), str(self.artefacts_dir.resolve())
        )

    def _select(self, only: set[str] | None) -> list[tuple[ServiceSpec, ...]]:
        unknown = (only or set()) - set(SERVICE_NAMES)
        if unknown:
            raise StackError(
                f"unknown service(s) {', '.join(sorted(unknown))}; "
                f"choose from: {', '.join(SERVICE_NAMES)}"
            )
        plan = build_plan(self.cfg, self.artefacts_dir)
        waves = [tuple(s for s in wave if only is None or s.name in only) for wave in plan]
        return [wave for wave in waves if wave]

    def _check_dependencies(self, waves: list[tuple[ServiceSpec, ...]], state: StackState) -> None:
        selected = {s.name for wave in waves for s in wave}
        for spec in (s for wave in waves for s in wave):
            for dep in spec.depends_on:
                recorded = state.services.get(dep)
                if dep not in selected and (recorded is None or not _status_of(recorded).alive):
                    raise StackError(
                        f"{spec.name} needs {dep}, which is neither running nor selected: "
                        f"add it to --only or start it first"
                    )

    def _is_current(self, spec: ServiceSpec, state: StackState, restarted: set[str]) -> bool:
        """True when ``spec`` is already up (keep it); raise if it runs but is unhealthy."""
        recorded = state.services.get(spec.name)
        if recorded is None:
            return False
        if recorded.oneshot:
            return not restarted.intersection(spec.depends_on)
        status = _status_of(recorded)
        if status.alive and status.healthy is False:
            raise StackError(
                f"{spec.name} (pid {status.pid}) is running but not healthy; "
                f"see {recorded.log}, then `vidrec stack down` and `up` again"
            )
        return status.alive

    def _record(self, state: StackState, proc: ManagedProcess) -> None:
        spec = proc.spec
        state.services[spec.name] = ServiceState(
            name=spec.name,
            pid=None if spec.oneshot else proc.pid,
            url=spec.url,
            ports=spec.ports,
            log=str(proc.log),
            health=health_to_json(spec.health),
            oneshot=spec.oneshot,
        )
        write_stack_state(state)

    def up(self, only: set[str] | None = None, progress: bool = True) -> StackState:
        """Start the selected services (all by default) wave by wave, each waited to health.

        On any failure everything this call started is stopped again and :class:`StackError`
        names the failed service and its log.
        """
        waves = self._select(only)
        state = self._load_state()
        state.env = stack_env(self.cfg, self.artefacts_dir)
        self._check_dependencies(waves, state)
        started: list[ManagedProcess] = []
        try:
            for wave in waves:
                batch = []
                for spec in wave:
                    if self._is_current(spec, state, {p.spec.name for p in started}):
                        if progress:
                            self.console.print(f"[dim]{spec.name}: already running[/]")
                        continue
                    if progress:
                        self.console.print(f"starting [bold]{spec.name}[/] …")
                    proc = ManagedProcess(spec, self.run_dir)
                    started.append(proc)
                    batch.append(proc.start())
                for proc in batch:
                    proc.wait_healthy(self.cfg.stack.start_timeout_s)
                    self._procs[proc.spec.name] = proc
                    self._record(state, proc)
        except BaseException:
            for proc in reversed(started):
                proc.stop()
                state.services.pop(proc.spec.name, None)
            write_stack_state(state)
            raise
        rows = self.settled_status()
        if progress:
            self.console.print(status_table(rows))
        bad = [
            f"{r.service} ({'unhealthy' if r.alive else 'stopped'}; "
            f"see {log_path(self.run_dir, r.service)})"
            for r in rows
            if not r.ok
        ]
        if bad:
            raise StackError(f"not healthy: {', '.join(bad)}; `vidrec stack down`, then `up` again")
        return state

    def stop(self, name: str) -> bool:
        """Stop one service and forget it (a later ``up`` starts it again, e.g. with another
        config); True if it was running."""
        state = self._load_state()
        proc = self._procs.pop(name, None)
        pid_file = self.run_dir / "pids" / f"{name}.pid"
        if proc is not None:
            proc.stop()
            ran = True
        else:
            text = pid_file.read_text().strip() if pid_file.is_file() else ""
            ran = text.isdigit() and stop_group(int(text))
        pid_file.unlink(missing_ok=True)
        state.services.pop(name, None)
        write_stack_state(state)
        return ran

    def down(self) -> list[str]:
        """Stop every service found in the pidfiles, last started first; return their names.

        Works from any process (the services are detached); calling it twice is harmless.
        """
        state = read_stack_state(self.run_dir)
        order = list(state.services) if state else []
        pid_dir = self.run_dir / "pids"
        found = {p.stem: p for p in pid_dir.glob("*.pid")} if pid_dir.is_dir() else {}
        names = [n for n in reversed(order) if n in found]
        names += sorted(set(found) - set(names))
        stopped = []
        for name in names:
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.stop()
                stopped.append(name)
                continue
            text = found[name].read_text().strip()
            if text.isdigit() and stop_group(int(text)):
                stopped.append(name)
            found[name].unlink(missing_ok=True)
        for proc in self._procs.values():  # stopped elsewhere: just reap our own children
            proc.stop()
        self._procs.clear()
        state_path(self.run_dir).unlink(missing_ok=True)
        return stopped

    def settled_status(self, grace_s: float | None = None) -> list[ServiceStatus]:
        """:meth:`status`, re-asked for up to ``grace_s`` (:data:`SETTLE_S`) while some
        service is not ok."""
        deadline = time.monotonic() + (SETTLE_S if grace_s is None else grace_s)
        rows = self.status()
        while not all(r.ok for r in rows) and time.monotonic() < deadline:
            time.sleep(SETTLE_POLL_S)
            rows = self.status()
        return rows

    def status(self) -> list[ServiceStatus]:
        """(service, pid, alive, healthy, url) for every recorded service, in start order."""
        state = read_stack_state(self.run_dir)
        return [] if state is None else [_status_of(s) for s in state.services.values()]
