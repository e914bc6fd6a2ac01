"""Real Redis servers for tests: a standalone instance or a 3-master cluster on 127.0.0.1.

Each server runs in a temp dir with persistence off, on a free port, and is killed on exit.
When ``redis-server`` is not installed the calling test is skipped with the reason (failed
under CI), and a test that starts one must be marked ``integration`` (``tests/needs.py``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.needs import require_binary, starts_server

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
START_TIMEOUT_S = 15.0


def _require_binaries() -> None:
    starts_server("redis-server")
    for binary in (REDIS_SERVER, REDIS_CLI):
        require_binary(binary, "apt-get install redis-server redis-tools")


CLUSTER_BUS_OFFSET = 10_000  # a cluster node also listens on port + 10000


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(taken: set[int] | None = None) -> int:
    """A free port whose cluster-bus twin (port + 10000) is free and valid too."""
    taken = taken or set()
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        bus_ok = port < 65_536 - CLUSTER_BUS_OFFSET and _is_free(port + CLUSTER_BUS_OFFSET)
        if bus_ok and port not in taken:
            return port
    raise RuntimeError("no free 127.0.0.1 port pair for redis-server")


def _wait_until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {START_TIMEOUT_S}s (last error: {last})")


@contextmanager
def _server(workdir: Path, port: int, cluster: bool) -> Iterator[None]:
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
    log = (workdir / f"redis-{port}.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)

        def up() -> bool:
            if proc.poll() is not None:
                log.flush()
                tail = (workdir / f"redis-{port}.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server on port {port} exited: {tail}")
            return bool(client.ping())

        _wait_until(up, f"redis-server on port {port}")
        client.close()
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def standalone_redis() -> Iterator[str]:
    """Yield the URL of a fresh standalone redis-server."""
    _require_binaries()
    port = _free_port()
    with (
        tempfile.TemporaryDirectory(prefix="vidrec-redis-") as tmp,
        _server(Path(tmp), port, False),
    ):
        yield f"redis://127.0.0.1:{port}/0"


@dataclass(frozen=True)
class RedisClusterInfo:
    url: str  # any one node; redis-py discovers the rest
    ports: tuple[int, ...]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.ports]


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisClusterInfo]:
    """Yield a fresh cluster of ``masters`` masters (no replicas) once it reports ok."""
    _require_binaries()
    chosen: set[int] = set()
    for _ in range(masters):
        chosen.add(_free_port(chosen))
    ports = tuple(sorted(chosen))
    with tempfile.TemporaryDirectory(prefix="vidrec-redis-cluster-") as tmp, ExitStack() as stack:
        for port in ports:
            stack.enter_context(_server(Path(tmp), port, True))
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S,
        )
        clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]

        def all_ok() -> bool:
            return all(c.cluster("info")["cluster_state"] == "ok" for c in clients)

        _wait_until(all_ok, f"redis cluster on ports {ports}")
        for c in clients:
            c.close()
        yield RedisClusterInfo(url=f"redis://127.0.0.1:{ports[0]}/0", ports=ports)
