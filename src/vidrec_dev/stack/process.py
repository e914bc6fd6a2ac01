"""One server of the local stack as data (:class:`ServiceSpec`) and as a process.

Each service runs detached in its own session (``start_new_session=True``), so it outlives the
``vidrec stack up`` that started it, and its pid is also its process-group id: stopping the
group reaches every child it forked (BentoML workers, Triton's python-backend stubs, the
redis-servers of a cluster launcher). Output goes to ``RUN_DIR/logs/<name>.log`` and the pid
to ``RUN_DIR/pids/<name>.pid``; every failure names the service and quotes that log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vidrec_dev.stack.health import ExitCheck, HealthCheck, TcpCheck

LOG_TAIL_LINES = 25
POLL_S = 0.1


class StackError(RuntimeError):
    """A stack service failed to start, stop or be found; the message says which and why."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service: a command line plus what "ready" means.

    ``env`` holds only the variables to add to the caller's environment. ``setup`` runs just
    before the process starts (write a config file, copy a backend dir); it is the only
    side effect, so building specs stays pure. ``ports`` are checked to be free first.
    A spec whose health is :class:`ExitCheck` is a one-shot step that must exit with 0.
    """

    name: str
    argv: tuple[str, ...]
    health: HealthCheck
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    depends_on: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    url: str = ""
    setup: Callable[[], object] | None = None

    @property
    def oneshot(self) -> bool:
        return isinstance(self.health, ExitCheck)


def log_path(run_dir: Path, name: str) -> Path:
    return run_dir / "logs" / f"{name}.log"


def pid_path(run_dir: Path, name: str) -> Path:
    return run_dir / "pids" / f"{name}.pid"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group, parent pid) of ``pid`` from /proc, or None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces
    return fields[0], int(fields[2]), int(fields[1])


def pid_alive(pid: int) -> bool:
    """Running, not a zombie (a killed child nobody reaped yet is not "alive")."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` and all their descendants.

    Descendants count too: some servers start workers in sessions of their own (BentoML's
    process manager does), and those would outlive a signal sent to the group alone.
    """
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X"):
                table[int(entry.name)] = stat
    members = {pid for pid, (_, group, _) in table.items() if group == pgid}
    grew = True
    while grew:
        children = {pid for pid, (_, _, ppid) in table.items() if ppid in members}
        grew = not children <= members
        members |= children
    return sorted(members)


def _signal_all(pgid: int, members: list[int], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(pgid: int, timeout_s: float = 10.0) -> bool:
    """SIGTERM the group and its descendants, wait, then SIGKILL what is left; True if
    anything was running. Idempotent."""
    members = group_members(pgid)
    if not members:
        _reap(pgid)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_all(pgid, members, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _reap(pgid)
            if not any(pid_alive(p) for p in members):
                return True
            time.sleep(POLL_S)
    _reap(pgid)
    survivors = [p for p in members if pid_alive(p)]
    if survivors:
        raise StackError(f"processes {survivors} of group {pgid} survived SIGKILL")
    return True


class ManagedProcess:
    """A started :class:`ServiceSpec`: start it, wait until healthy, stop its whole group."""

    def __init__(self, spec: ServiceSpec, run_dir: Path) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.log = log_path(run_dir, spec.name)
        self.pidfile = pid_path(run_dir, spec.name)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _fail(self, what: str) -> StackError:
        return StackError(
            f"service {self.spec.name!r} {what}; log: {self.log}\n"
            f"--- last lines of {self.log.name} ---\n{log_tail(self.log)}"
        )

    def start(self) -> ManagedProcess:
        """Launch without waiting; raise :class:`StackError` if a port is taken or exec fails."""
        for port in self.spec.ports:
            if TcpCheck(port)():
                raise StackError(
                    f"service {self.spec.name!r}: port {port} on 127.0.0.1 is already in use; "
                    "stop whatever listens there (`vidrec stack down`?) or change the port "
                    "through its VIDREC_* setting"
                )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        if self.spec.setup is not None:
            try:
                self.spec.setup()
            except StackError:
                raise
            except Exception as exc:
                raise StackError(f"service {self.spec.name!r}: setup failed: {exc}") from exc
        with self.log.open("wb") as out:
            out.write(f"$ {' '.join(self.spec.argv)}\n".encode())
            out.flush()
            try:
                self._proc = subprocess.Popen(
                    self.spec.argv,
                    env={**os.environ, **self.spec.env},
                    cwd=self.spec.cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise self._fail(f"could not be executed ({exc})") from exc
        self.pidfile.write_text(f"{self._proc.pid}\n")
        return self

    def wait_healthy(self, timeout_s: float) -> None:
        """Return once healthy (one-shot: exited 0); else stop it and raise :class:`StackError`."""
        if self._proc is None:
            raise StackError(f"service {self.spec.name!r} was never started")
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                code = self._proc.poll()
                if code is not None:
                    if self.spec.oneshot and code == 0:
                        self.pidfile.unlink(missing_ok=True)
                        return
                    raise self._fail(f"exited with code {code} before it was healthy")
                if not self.spec.oneshot and self.spec.health():
                    return
                if time.monotonic() > deadline:
                    raise self._fail(
                        f"not healthy after {timeout_s:.0f} s "
                        f"(waiting for: {self.spec.health.describe()})"
                    )
                time.sleep(POLL_S)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the whole process group and drop the pidfile; safe to call twice."""
        if self._proc is not None:
            stop_group(self._proc.pid, timeout_s)
            self._proc.poll()
        self.pidfile.unlink(missing_ok=True)
