"""Health checks: "is this server ready to take requests?", answered without side effects.

Every check except :class:`CallableCheck` is plain data and round-trips through JSON, so the
state file can carry it and ``vidrec stack status`` in another process asks the very same
question that ``up`` waited on.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import redis

HOST = "127.0.0.1"
PROBE_TIMEOUT_S = 1.0


class HealthCheck(Protocol):
    def __call__(self) -> bool:
        """True when healthy; never raises for an unreachable server (that is just False)."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class TcpCheck:
    """Something accepts connections on ``host:port`` (servers without a health endpoint)."""

    port: int
    host: str = HOST
    kind: ClassVar[str] = "tcp"

    def __call__(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=PROBE_TIMEOUT_S):
                return True
        except OSError:
            return False

    def describe(self) -> str:
        return f"TCP connect to {self.host}:{self.port}"


@dataclass(frozen=True)
class HttpCheck:
    """``GET url`` answers 200 (readiness endpoints: Triton, BentoML, Prometheus)."""

    url: str
    kind: ClassVar[str] = "http"

    def __call__(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=PROBE_TIMEOUT_S) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def describe(self) -> str:
        return f"HTTP GET {self.url} -> 200"


@dataclass(frozen=True)
class GrpcCheck:
    """The standard gRPC health service answers SERVING for ``service`` ("" = the server).

    A grpc.aio server binds its port before it reports SERVING, so a TCP connect alone
    would call a server that is still starting healthy.
    """

    port: int
    service: str = ""
    host: str = HOST
    kind: ClassVar[str] = "grpc"

    def __call__(self) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(f"{self.host}:{self.port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                request = health_pb2.HealthCheckRequest(service=self.service)
                reply = stub.Check(request, timeout=PROBE_TIMEOUT_S)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def describe(self) -> str:
        return f"gRPC health {self.service or '(server)'} SERVING on {self.host}:{self.port}"


@dataclass(frozen=True)
class RedisCheck:
    """Every node answers PING and, for a cluster, reports ``cluster_state:ok``.

    A cluster node answers PING long before the slots are assigned, so PING alone would call
    a half-created cluster healthy.
    """

    ports: tuple[int, ...]
    cluster: bool = True
    host: str = HOST
    kind: ClassVar[str] = "redis"

    def _node_ok(self, port: int) -> bool:
        client = redis.Redis(host=self.host, port=port, socket_timeout=PROBE_TIMEOUT_S)
        try:
            if not client.ping():
                return False
            return not self.cluster or client.cluster("info").get("cluster_state") == "ok"
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def __call__(self) -> bool:
        return all(self._node_ok(p) for p in self.ports)

    def describe(self) -> str:
        what = "cluster_state:ok" if self.cluster else "PING"
        return f"redis {what} on {self.host}:{','.join(map(str, self.ports))}"


@dataclass(frozen=True)
class CallableCheck:
    """Any predicate; not serialisable, so ``status`` from another process reports it unknown."""

    fn: Callable[[], bool]
    what: str
    kind: ClassVar[str] = "callable"

    def __call__(self) -> bool:
        try:
            return bool(self.fn())
        except Exception:  # a probe that errors means "not healthy yet"
            return False

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class ExitCheck:
    """For one-shot steps: healthy means the process exited with code 0 (checked by the runner)."""

    kind: ClassVar[str] = "exit"

    def __call__(self) -> bool:
        return False

    def describe(self) -> str:
        return "exits with code 0"


_KINDS: dict[str, type[Any]] = {
    c.kind: c for c in (TcpCheck, HttpCheck, GrpcCheck, RedisCheck, ExitCheck)
}


def health_to_json(check: HealthCheck) -> dict[str, Any] | None:
    """The check as JSON data, or None for checks that cannot be serialised."""
    kind = getattr(check, "kind", None)
    if kind not in _KINDS or not dataclasses.is_dataclass(check):
        return None
    return {"kind": kind, **dataclasses.asdict(check)}


def health_from_json(data: Mapping[str, Any] | None) -> HealthCheck | None:
    if not data or data.get("kind") not in _KINDS:
        return None
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "kind"}
    check: HealthCheck = _KINDS[data["kind"]](**fields)
    return check
