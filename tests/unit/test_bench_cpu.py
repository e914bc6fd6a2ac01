"""Process-tree CPU accounting against real processes that burn a known amount of CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from vidrec_dev.bench.cpu import (
    ProcessTreeCPU,
    ProcStat,
    TreeUsage,
    cpu_seconds,
    machine_busy_s,
    read_stat,
    tree_pids,
)

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"

# The child burns 0.1 s itself, reaps one grandchild that burned 0.3 s, and keeps a second
# grandchild alive that burned 0.3 s: 0.7 s in all, only 0.4 s without either grandchild.
TREE = textwrap.dedent(
    f"""
    import subprocess, sys
    burn = {BURN!r}
    input()
    reaped = subprocess.Popen([sys.executable, "-c", burn.format(s=0.3)])
    alive = subprocess.Popen(
        [sys.executable, "-c", burn.format(s=0.3) + "print('burnt', flush=True)\\ninput()"],
        stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
    )
    exec(burn.format(s=0.1))
    reaped.wait()
    alive.stdout.readline()
    print("done", flush=True)
    input()
    alive.stdin.close()
    alive.wait()
    """
)


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    yield proc
    proc.stdin.close()
    proc.wait(10)


def test_a_tree_counts_its_own_cpu_and_both_grandchildren(tree: subprocess.Popen[str]) -> None:
    assert tree.stdin is not None and tree.stdout is not None
    meter = ProcessTreeCPU({"svc": tree.pid})
    before = meter.sample()
    busy0 = machine_busy_s()
    tree.stdin.write("go\n")
    tree.stdin.flush()
    assert tree.stdout.readline().strip() == "done"
    after = meter.sample()
    spent = cpu_seconds(before, after)["svc"]
    assert 0.55 <= spent <= 1.5, spent  # 0.4 would mean a grandchild was missed
    assert machine_busy_s() - busy0 >= 0.55  # the machine was at least that busy
    assert after["svc"].processes == 2  # the child and its live grandchild
    assert after["svc"].rss_mib > 1.0


def test_a_tree_gone_by_the_second_sample_costs_nothing() -> None:
    before = {"a": TreeUsage(1.0, 0, 1), "b": TreeUsage(2.0, 0, 1)}
    after = {"a": TreeUsage(1.5, 0, 1), "b": TreeUsage(0.0, 0, 0)}
    assert cpu_seconds(before, after) == {"a": 0.5, "b": 0.0}
    assert cpu_seconds(before, {"a": TreeUsage(1.25, 0, 1)}) == {"a": 0.25, "b": 0.0}


def _stat(pid: int, ppid: int, pgrp: int) -> ProcStat:
    return ProcStat(pid, "S", ppid, pgrp, 0, 0, 0, 0, 0)


def test_tree_pids_follows_parents_and_the_leaders_group() -> None:
    table = {
        s.pid: s
        for s in (
            _stat(10, 1, 10),  # the service, leading its own group
            _stat(11, 10, 11),  # a worker in a session of its own
            _stat(12, 11, 11),  # the worker's child
            _stat(13, 1, 10),  # daemonised: re-parented to init, still in the group
            _stat(20, 1, 20),  # unrelated
            _stat(21, 20, 20),
        )
    }
    assert tree_pids(10, table) == {10, 11, 12, 13}
    assert tree_pids(11, table) == {11, 12}
    assert tree_pids(99, table) == set()


def test_read_stat_parses_this_process_and_misses_a_dead_one() -> None:
    mine = read_stat(os.getpid())
    assert mine is not None and mine.ppid == os.getppid() and mine.utime + mine.stime > 0
    assert read_stat(2**22 + 1) is None  # above pid_max: never a process
