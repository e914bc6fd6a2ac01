"""What the running stack burns with no traffic: CPU ms per second of each service's tree.

An idle stack should cost next to nothing; a poll loop that wakes too often, a scrape interval
or a server's own timers show up here first. The accounting (utime+stime of a service's whole
process tree, reaped children included) is :mod:`vidrec_dev.bench.cpu`'s, the same the serving
benchmark divides by requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from vidrec_dev.bench.cpu import ProcessTreeCPU, cpu_seconds
from vidrec_dev.stack.process import StackError
from vidrec_dev.stack.run_record import read_stack_state

TOTAL = "stack"


@dataclass(frozen=True)
class IdleCPU:
    """CPU ms per wall second of each service over one window, and their sum."""

    seconds: float
    ms_per_s: dict[str, float]
    processes: dict[str, int]

    @property
    def total(self) -> float:
        return sum(self.ms_per_s.values())

    def to_json(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 2),
            "ms_per_s": {k: round(v, 2) for k, v in self.ms_per_s.items()},
            TOTAL: round(self.total, 2),
        }


def service_roots(run_dir: Path) -> dict[str, int]:
    """Running services of the stack recorded in ``run_dir`` → the pid leading each tree."""
    state = read_stack_state(run_dir)
    if state is None:
        raise StackError(f"no stack recorded in {run_dir}: start one with `vidrec stack up`")
    return {name: s.pid for name, s in state.services.items() if s.pid is not None}


def measure_idle_cpu(roots: dict[str, int], seconds: float) -> IdleCPU:
    """Sample every tree, wait ``seconds`` (send no traffic meanwhile), sample again."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    meter = ProcessTreeCPU(roots)
    before, start = meter.sample(), time.monotonic()
    time.sleep(seconds)
    after, wall = meter.sample(), time.monotonic() - start
    used = cpu_seconds(before, after)
    return IdleCPU(
        seconds=wall,
        ms_per_s={name: used[name] * 1000 / wall for name in roots},
        processes={name: after[name].processes if name in after else 0 for name in roots},
    )


def idle_table(result: IdleCPU) -> Table:
    table = Table("service", "processes", "CPU ms/s", title=f"idle CPU over {result.seconds:.0f} s")
    for name, ms in sorted(result.ms_per_s.items(), key=lambda kv: -kv[1]):
        table.add_row(name, str(result.processes[name]), f"{ms:.1f}")
    table.add_row(f"[bold]{TOTAL}[/]", str(sum(result.processes.values())), f"{result.total:.1f}")
    return table
