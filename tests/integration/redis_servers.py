"""Real Redis servers for tests: a standalone instance or a cluster on 127.0.0.1.

The cluster is 3 masters without replicas unless a test asks for replicas (the failover
chaos case: :func:`redis_cluster` with ``replicas_per_master=1`` and a short node timeout).
Each server runs in a temp dir with persistence off, on a free port, and is killed on exit.
When ``redis-server`` is not installed the calling test is skipped with the reason (failed
under CI), and a test that starts one must be marked ``integration`` (``tests/needs.py``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.needs import require_binary, starts_server

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
START_TIMEOUT_S = 15.0


def free_port() -> int:
    """A free 127.0.0.1 port whose cluster-bus twin is free too."""
    return _free_port()


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
def _server(
    workdir: Path,
    port: int,
    cluster: bool,
    node_timeout_ms: int | None = None,
    host: str = "127.0.0.1",
) -> Iterator[subprocess.Popen[bytes]]:
    args = [REDIS_SERVER, "--port", str(port), "--bind", host, "--dir", str(workdir)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{host}-{port}.conf"]
        if host != "127.0.0.1":  # else its bus connections leave from 127.0.0.1 and peers
            args += ["--cluster-announce-ip", host]  # take it for another node's address
    if node_timeout_ms is not None:
        args += ["--cluster-node-timeout", str(node_timeout_ms)]
    log_file = workdir / f"redis-{host}-{port}.log"
    log = log_file.open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host=host, port=port)

        def up() -> bool:
            if proc.poll() is not None:
                log.flush()
                tail = log_file.read_text(errors="replace")[-500:]
                raise RuntimeError(f"redis-server on port {port} exited: {tail}")
            return bool(client.ping())

        _wait_until(up, f"redis-server on port {port}")
        client.close()
        yield proc
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
class ClusterNode:
    """One line of ``CLUSTER NODES``: who serves what, as one node sees it."""

    node_id: str
    port: int
    flags: frozenset[str]  # myself, master, slave, fail, fail?, ...
    master_id: str  # "-" for a master
    slots: tuple[str, ...]  # "0-5460" ranges (masters only)

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags


def cluster_nodes(port: int, host: str = "127.0.0.1") -> list[ClusterNode]:
    """``CLUSTER NODES`` of the node on ``host:port``, parsed (the raw text, not redis-py's
    dict)."""
    with redis.Redis(host=host, port=port) as client:
        text = client.execute_command("CLUSTER", "NODES")
    raw = text.decode() if isinstance(text, bytes) else str(text)
    out = []
    for line in raw.strip().splitlines():
        node_id, address, flags, master, *_rest = line.split()
        out.append(
            ClusterNode(
                node_id=node_id,
                port=int(address.split("@")[0].rsplit(":", 1)[1]),
                flags=frozenset(flags.split(",")),
                master_id=master,
                slots=tuple(line.split()[8:]),
            )
        )
    return out


@dataclass(frozen=True)
class RedisClusterInfo:
    url: str  # any one node; redis-py discovers the rest
    ports: tuple[int, ...]
    processes: Mapping[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.ports]

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no last words to its replicas)."""
        proc = self.processes[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)


def _replicas_synced(ports: tuple[int, ...]) -> bool:
    """Every replica has finished its first sync with its master (else it cannot fail over)."""
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port) as client:
            info = client.info("replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            return False
    return True


@contextmanager
def redis_cluster(
    masters: int = 3, replicas_per_master: int = 0, node_timeout_ms: int | None = None
) -> Iterator[RedisClusterInfo]:
    """Yield a fresh cluster once every node reports ok (and every replica is in sync).

    ``replicas_per_master`` replicas per master (``redis-cli --cluster create
    --cluster-replicas``); ``node_timeout_ms`` sets ``cluster-node-timeout`` on every node
    (redis default 15000 ms; a failover test wants ~1000 ms so a failover takes seconds).
    """
    _require_binaries()
    chosen: set[int] = set()
    for _ in range(masters * (1 + replicas_per_master)):
        chosen.add(_free_port(chosen))
    ports = tuple(sorted(chosen))
    with tempfile.TemporaryDirectory(prefix="vidrec-redis-cluster-") as tmp, ExitStack() as stack:
        processes = {
            port: stack.enter_context(_server(Path(tmp), port, True, node_timeout_ms))
            for port in ports
        }
        nodes = [f"127.0.0.1:{p}" for p in ports]
        replicas = ["--cluster-replicas", str(replicas_per_master)]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, *replicas, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S,
        )
        clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]

        def all_ok() -> bool:
            ok = all(c.cluster("info")["cluster_state"] == "ok" for c in clients)
            return ok and _replicas_synced(ports)

        _wait_until(all_ok, f"redis cluster on ports {ports}")
        for c in clients:
            c.close()
        yield RedisClusterInfo(f"redis://127.0.0.1:{ports[0]}/0", ports, processes)


@contextmanager
def cluster_node(workdir: Path, host: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """One empty cluster-enabled node on ``host:port``, for tests that form the cluster
    themselves. Any 127.x.y.z address works, so several nodes can share one port, as the
    pods of a StatefulSet do."""
    _require_binaries()
    with _server(workdir, port, True, host=host) as proc:
        yield proc
