"""Run ``load_tests/locustfile.py`` as its own process and read back what it wrote.

Locust patches the standard library with gevent, so it never runs inside a vidrec process:
:class:`LocustProcess` starts ``locust --headless`` with the options of a :class:`LocustSpec`,
and :meth:`LocustProcess.wait` returns its exit code with the summary from the locustfile's
``quitting`` hook (:class:`~vidrec_dev.loadtest.timeline.RunSummary`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from vidrec.config import REPO_ROOT
from vidrec_dev.loadtest.sla import Sla
from vidrec_dev.loadtest.timeline import RunSummary, read_summary

LOCUSTFILE = REPO_ROOT / "load_tests" / "locustfile.py"
STOP_GRACE_S = 30.0  # after --run-time: stop users, write CSV/HTML/summary/plot


def locust_binary() -> str:
    here = Path(sys.executable).with_name("locust")
    return str(here) if here.exists() else shutil.which("locust") or "locust"


@dataclass(frozen=True)
class LocustSpec:
    """One headless Locust run; ``out_prefix`` names its CSV/HTML/summary/PNG files."""

    host: str
    users: int
    run_time_s: float
    out_prefix: Path
    spawn_rate: float = 0.0  # 0: all users at once
    sla: Sla = field(default_factory=Sla)
    classes: tuple[str, ...] = ("HttpApiUser",)
    mix: str = ""
    users_file: Path | None = None
    think_ms: float = 500.0
    grpc_host: str = ""
    triton_url: str = ""
    api_key: str = ""
    run_tag: str = ""
    html: bool = True
    plot: bool = True

    def argv(self) -> list[str]:
        p = self.out_prefix
        args = [
            locust_binary(),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "-u",
            str(self.users),
            "-r",
            f"{self.spawn_rate or self.users:g}",
            "-t",
            f"{max(round(self.run_time_s), 1)}s",
            "--stop-timeout",
            "5",
            "--host",
            self.host,
            "--csv",
            str(p),
            "--loglevel",
            "WARNING",
            "--sla-p99-ms",
            f"{self.sla.p99_ms:g}",
            "--sla-fail-ratio",
            f"{self.sla.fail_ratio:g}",
            "--sla-degraded-ratio",
            f"{self.sla.degraded_ratio:g}",
            "--think-ms",
            f"{self.think_ms:g}",
            "--summary-file",
            f"{p}_summary.json",
        ]
        if self.html:
            args += ["--html", f"{p}_report.html"]
        if self.plot:
            args += ["--plot-file", f"{p}_latency.png"]
        for flag, value in (
            ("--mix", self.mix),
            ("--users-file", str(self.users_file or "")),
            ("--grpc-host", self.grpc_host),
            ("--triton-url", self.triton_url),
            ("--api-key", self.api_key),
            ("--run-tag", self.run_tag),
        ):
            if value:
                args += [flag, value]
        return [*args, *self.classes]


@dataclass
class LocustResult:
    exit_code: int
    summary: RunSummary
    log: Path

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


class LocustError(RuntimeError):
    """Locust did not produce a summary (bad options, crash); the message quotes its log."""


class LocustProcess:
    """A started Locust run (background); :meth:`wait` for its result."""

    def __init__(self, spec: LocustSpec) -> None:
        self.spec = spec
        spec.out_prefix.parent.mkdir(parents=True, exist_ok=True)
        self.summary_path = Path(f"{spec.out_prefix}_summary.json")
        self.summary_path.unlink(missing_ok=True)
        self.log = Path(f"{spec.out_prefix}_locust.log")
        self._log = self.log.open("w")
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            spec.argv(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=REPO_ROOT,
        )

    def wait(self, progress: Console | None = None, label: str = "") -> LocustResult:
        timeout = self.spec.run_time_s + STOP_GRACE_S + 30
        if progress is not None:
            columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
            with Progress(*columns, console=progress, transient=True) as bar:
                job = bar.add_task(label or f"{self.spec.users} users", total=self.spec.run_time_s)
                while self.proc.poll() is None:
                    bar.update(
                        job, completed=min(time.time() - self.started_at, self.spec.run_time_s)
                    )
                    time.sleep(0.5)
        try:
            code = self.proc.wait(timeout=max(timeout - (time.time() - self.started_at), 1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        if not self.summary_path.exists():
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-25:])
            raise LocustError(f"locust exited {code} without a summary; log {self.log}:\n{tail}")
        return LocustResult(code, read_summary(self.summary_path), self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


def run_locust(spec: LocustSpec, console: Console | None = None, label: str = "") -> LocustResult:
    """Run Locust to the end (``spec.run_time_s`` plus shutdown) and return its result."""
    proc = LocustProcess(spec)
    try:
        return proc.wait(console, label)
    finally:
        proc.stop()
