"""CPU time and memory of whole process trees, from /proc: what a service costs per request.

A service of the local stack is a tree (BentoML's process manager and its workers, Triton and
its python-backend stubs, a cluster launcher and its redis-servers), so a service's CPU is the
sum over the root and every descendant. ``utime + stime`` in ``/proc/<pid>/stat`` already
covers all threads of a process; ``cutime + cstime`` adds children that exited and were reaped
by their parent. Summing all four over the live (and zombie) members keeps the total steady
when a member exits inside the tree, so the difference of two samples is the tree's CPU in
that window, whatever it forked or reaped meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the accounting needs (times in clock ticks)."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    rss_pages: int

    @property
    def ticks(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def read_stat(pid: int) -> ProcStat | None:
    """``pid``'s stat, or None when it is gone (or not readable)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces and ")"
    return ProcStat(pid, f[0], int(f[1]), int(f[2]), int(f[11]), int(f[12]), int(f[13]),
                    int(f[14]), int(f[21]))  # fmt: skip


def process_table() -> dict[int, ProcStat]:
    """Every process on the machine, read once (one consistent-enough view for many trees)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None:
                table[stat.pid] = stat
    return table


def tree_pids(root: int, table: Mapping[int, ProcStat]) -> set[int]:
    """``root``, its descendants (by parent pid), and its process group when it leads one.

    The group catches members re-parented away from the tree (a daemonising child); the
    parent walk catches workers that moved to sessions of their own (BentoML's do).
    """
    if root not in table:
        return set()
    members = {root} | {p for p, s in table.items() if s.pgrp == root}
    frontier = set(members)
    while frontier:
        frontier = {p for p, s in table.items() if s.ppid in frontier and p not in members}
        members |= frontier
    return members


@dataclass(frozen=True)
class TreeUsage:
    """One sample of a process tree: cumulative CPU seconds and current resident memory."""

    cpu_s: float
    rss_bytes: int
    processes: int

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / MIB


def tree_usage(root: int, table: Mapping[int, ProcStat] | None = None) -> TreeUsage:
    """CPU (all threads, all descendants, reaped children included) and RSS of ``root``'s tree."""
    table = process_table() if table is None else table
    stats = [table[p] for p in tree_pids(root, table)]
    live = [s for s in stats if s.state not in ("Z", "X")]
    return TreeUsage(
        cpu_s=sum(s.ticks for s in stats) / CLK_TCK,
        rss_bytes=sum(s.rss_pages for s in live) * PAGE_BYTES,
        processes=len(live),
    )


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores, every process):
    a window's difference against the bench's own trees shows what else competed."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class ProcessTreeCPU:
    """Named process trees (one per service), sampled together: ``sample()`` twice, then
    :func:`cpu_seconds` of the two samples is each tree's CPU in that window."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self.roots = dict(roots)

    def sample(self) -> dict[str, TreeUsage]:
        table = process_table()
        return {name: tree_usage(pid, table) for name, pid in self.roots.items()}


def cpu_seconds(
    before: Mapping[str, TreeUsage], after: Mapping[str, TreeUsage]
) -> dict[str, float]:
    """CPU seconds each tree spent between two samples (a tree gone by ``after`` counts 0)."""
    return {
        name: max(after[name].cpu_s - before[name].cpu_s, 0.0) if name in after else 0.0
        for name in before
    }
