"""A load-test stack on its own ports, and what the experiments read from it.

- :func:`loadtest_config`: the default config moved to ports clear of ``make up`` and of the
  other benches (the bench's :class:`~vidrec_dev.bench.serving.BenchPorts` pattern), with event
  settings that make accounting quick: the lake flushes every second, and a restarted
  processor claims a dead one's pending entries after 5 s instead of 60 s;
- :class:`LoadStack`: the real stack (every service: Redis Cluster, Triton, BentoML, gRPC,
  event processor, lake writer, Prometheus) up and down, one service restarted;
- :func:`service_rss`: resident memory of each service's whole process tree;
- :func:`account_events`: accepted events against the processor's effects and the lake.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import redis
from redis.cluster import RedisCluster
from rich.console import Console

from vidrec.config import REPO_ROOT, Config
from vidrec.contracts.keys import user_marker
from vidrec.ranking.triton_process import TritonPorts
from vidrec_dev.bench.serving import BenchPorts, bench_config
from vidrec_dev.stack.process import group_members
from vidrec_dev.stack.run_record import read_stack_state
from vidrec_dev.stack.runner import Stack

PORTS = BenchPorts(
    17501,
    TritonPorts(http=18500, grpc=18501, metrics=18502),
    13500,
    13501,
    13502,
    15551,
    19764,
    19590,
)
PROCESSOR_METRICS_PORT = 19765
LAKE_METRICS_PORT = 19766
# Settings the stack's processes read from the environment (they are started with it).
STACK_ENV = {
    "VIDREC_EVENTS__LAKE_MAX_AGE_S": "1",  # the lake flushes every second: quick accounting
    "VIDREC_EVENTS__CLAIM_MIN_IDLE_MS": "5000",  # a dead consumer's entries: claimed after 5 s
    "VIDREC_EVENTS__CLAIM_EVERY_S": "2",
}


def default_artefacts() -> Path:
    return REPO_ROOT / "artifacts" / "demo"


def loadtest_config(
    run_dir: Path,
    artefacts: Path,
    ports: BenchPorts = PORTS,
    events_ports: tuple[int, int] = (PROCESSOR_METRICS_PORT, LAKE_METRICS_PORT),
) -> Config:
    """The stack config on ``ports`` (and the processor's and lake writer's metrics ports)."""
    cfg = bench_config(run_dir, artefacts, ports)
    return replace(
        cfg,
        events=replace(
            cfg.events, processor_metrics_port=events_ports[0], lake_metrics_port=events_ports[1]
        ),
        stack=replace(cfg.stack, start_timeout_s=120.0),
    )


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` added (services inherit it when they start)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM raises SystemExit (in the main thread), so ``with LoadStack`` stops the stack."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LoadStack:
    """The whole local stack for a load test; use as a context manager (down on exit)."""

    def __init__(
        self,
        cfg: Config,
        artefacts: Path,
        console: Console | None = None,
        env: dict[str, str] | None = None,
        only: set[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.artefacts = artefacts
        self.console = console or Console(stderr=True)
        self.stack = Stack(cfg, artefacts, self.console)
        self.env = {**STACK_ENV, **(env or {})}
        self.only = only  # services to start (default: all)
        self._env: contextlib.ExitStack | None = None

    def __enter__(self) -> LoadStack:
        self._env = contextlib.ExitStack()
        self._env.enter_context(environment(self.env))
        self._env.enter_context(_exit_on_sigterm())
        try:
            self.stack.up(self.only, progress=False)
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.down()

    def down(self) -> None:
        try:
            self.stack.down()
        finally:
            if self._env is not None:
                self._env.close()
                self._env = None

    @property
    def run_dir(self) -> Path:
        return self.cfg.stack.run_dir

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.cfg.serving.recommender_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.cfg.serving.grpc_port}"

    @property
    def triton_grpc(self) -> str:
        return f"127.0.0.1:{self.cfg.triton.grpc_port}"

    @property
    def lake_dir(self) -> Path:
        return self.run_dir / "lake"

    def pid(self, service: str) -> int:
        state = read_stack_state(self.run_dir)
        pid = (
            None if state is None or service not in state.services else state.services[service].pid
        )
        if pid is None:
            raise RuntimeError(f"{service} is not running in {self.run_dir}")
        return pid

    def pids(self) -> dict[str, int]:
        state = read_stack_state(self.run_dir)
        if state is None:
            return {}
        return {n: s.pid for n, s in state.services.items() if s.pid is not None}

    def restart(self, service: str) -> None:
        """Start ``service`` again after it died (``prepare`` is kept: it already ran)."""
        self.stack.up(only={service, "prepare"}, progress=False)

    def redis_client(self) -> RedisCluster:
        return RedisCluster(
            host="127.0.0.1", port=self.cfg.stack.redis_base_port, socket_timeout=5.0
        )


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def service_rss(pids: dict[str, int]) -> dict[str, float]:
    """MiB resident per service: the service process and every process it started."""
    return {
        name: sum(_rss_kib(p) for p in group_members(pgid)) / 1024 for name, pgid in pids.items()
    }


@dataclass(frozen=True)
class EventAccount:
    """Accepted events (answered 202) against what the consumers did with them."""

    accepted: int
    processed: int  # the processor's per-event marker exists (its effects were applied)
    in_lake: int  # the event_id is in a lake Parquet file
    lake_rows: int  # rows of this run in the lake (> in_lake: a duplicate row)
    drain_s: float

    @property
    def lost(self) -> int:
        """Accepted events missing from the processor's effects or from the lake."""
        return max(self.accepted - self.processed, self.accepted - self.in_lake, 0)


def lake_event_ids(lake: Path, prefix: str = "") -> list[str]:
    import polars as pl

    files = sorted(lake.rglob("*.parquet")) if lake.exists() else []
    if not files:
        return []
    ids = pl.concat([pl.read_parquet(f, columns=["event_id"]) for f in files])["event_id"]
    return [i for i in ids.to_list() if i.startswith(prefix)]


def processed_count(client: RedisCluster, events: Sequence[tuple[str, int]], n_buckets: int) -> int:
    n = 0
    for start in range(0, len(events), 500):
        keys = [user_marker(eid, uid, n_buckets) for eid, uid in events[start : start + 500]]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        n += sum(int(x) for x in pipe.execute())
    return n


def account_events(
    stack: LoadStack, events: Sequence[tuple[str, int]], prefix: str, timeout_s: float = 90.0
) -> EventAccount:
    """Wait (up to ``timeout_s``) until every accepted event is applied and in the lake."""
    accepted = {eid for eid, _ in events}
    start = time.monotonic()
    client = stack.redis_client()
    processed = 0
    try:
        while True:
            try:
                processed = processed_count(client, events, stack.cfg.features.n_buckets)
            except redis.RedisError:  # the cluster may still be settling after a fault
                client.close()
                client = stack.redis_client()
            rows = [i for i in lake_event_ids(stack.lake_dir, prefix) if i in accepted]
            in_lake = len(set(rows))
            done = processed >= len(events) and in_lake >= len(accepted)
            if done or time.monotonic() - start > timeout_s:
                return EventAccount(
                    len(accepted), processed, in_lake, len(rows), time.monotonic() - start
                )
            time.sleep(1.0)
    finally:
        client.close()
