"""Score candidates with the ranker served by Triton, over gRPC, at the least client CPU.

One request per call, batch = the candidate set: Triton's dynamic batcher merges requests
from concurrent page views, so the client never splits or pads. Failures are raised as
:class:`RankerError` with a ``reason`` the pipeline turns into its degradation metric.

What keeps the client cheap (it runs on the request path of every page view):

- the ``ModelInfer`` request goes out as wire bytes: a header (model, version, input
  metadata, requested output) serialized once per (model, version, shape) and cached, then
  the tensor as ``raw_input_contents`` joined straight from the array's buffer -- one copy,
  no protobuf message holding 400 KB. tritonclient's ``infer`` builds and serializes a
  message per call and costs ~2.5x the client CPU for 500 rows;
- the answer's ``raw_output_contents`` is read in place (``np.frombuffer``, no copy);
- one gRPC channel per process and URL, shared by every client of that URL (every model,
  version and variant); a ``grpc.aio`` channel belongs to its event loop, so the asyncio
  channels are shared per (loop, URL, options). Channels are reference-counted: the last
  client to close one closes it.

The URL is any gRPC target. One channel balances per request over every address its target
resolves to (``round_robin``, :func:`channel_options`): a ``dns:///`` name of a headless
Service spreads a pod's requests over all Triton pods, where a ClusterIP Service would pin
the channel's one connection to whichever pod kube-proxy chose.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

from vidrec.config import TritonConfig
from vidrec.ranking.signature import N_HEADS, RANKER_INPUT, RANKER_OUTPUT

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_CONFIG = "/inference.GRPCInferenceService/ModelConfig"
MODEL_STATISTICS = "/inference.GRPCInferenceService/ModelStatistics"
# Triton's answers for 1,024 rows are small, but a caller may send more than gRPC's 4 MB.
ChannelOptions = tuple[tuple[str, int | str], ...]
CHANNEL_OPTIONS: ChannelOptions = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
)
_RAW_INPUT_TAG = b"\x3a"  # ModelInferRequest.raw_input_contents: field 7, length-delimited


class RankerError(RuntimeError):
    """The ranker could not score: ``reason`` is ``timeout``, ``unavailable`` or ``error``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"ranker {reason}: {message}")
        self.reason = reason


def rpc_reason(exc: grpc.RpcError) -> str:
    """The degradation reason of a failed gRPC call (``grpc`` and ``grpc.aio`` errors)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout"
    if code == grpc.StatusCode.UNAVAILABLE:
        return "unavailable"
    return "error"


def rpc_message(exc: grpc.RpcError) -> str:
    details = exc.details() if callable(getattr(exc, "details", None)) else None
    return str(details or exc)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@lru_cache(maxsize=4096)
def _request_header(model_name: str, version: str, rows: int, width: int) -> bytes:
    """Every field of the request but the tensor bytes, serialized (concatenated protobuf
    encodings merge, so the raw contents field is simply appended)."""
    request = pb.ModelInferRequest(model_name=model_name, model_version=version)
    request.inputs.add(name=RANKER_INPUT, datatype="FP32", shape=[rows, width])
    request.outputs.add(name=RANKER_OUTPUT)
    return request.SerializeToString()


def encode_request(model_name: str, version: str, x: np.ndarray) -> bytes:
    """``ModelInfer`` wire bytes for float32 ``x[B, D]`` (one copy of the array)."""
    if not x.flags.c_contiguous:  # the wire wants row-major bytes; callers' arrays usually are
        x = np.ascontiguousarray(x)
    rows, width = x.shape
    header = _request_header(model_name, version, rows, width)
    return b"".join((header, _RAW_INPUT_TAG, _varint(x.nbytes), x.data))


def decode_scores(response: Any, rows: int) -> np.ndarray:
    """float32[rows, N_HEADS] viewed in place over the answer's raw output bytes."""
    outputs = list(response.outputs)
    names = [o.name for o in outputs]
    if names != [RANKER_OUTPUT] or len(response.raw_output_contents) != 1:
        raise ValueError(f"expected one raw output {RANKER_OUTPUT!r}, got {names}")
    (out,) = outputs
    shape = tuple(out.shape)
    if out.datatype != "FP32" or shape != (rows, N_HEADS):
        raise ValueError(f"output {RANKER_OUTPUT} is {out.datatype}{list(shape)}")
    return np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(shape)


def _infer_method(channel: Any) -> Callable[..., Any]:
    """``ModelInfer`` taking pre-encoded bytes (``encode_request``), answering the message."""
    return channel.unary_unary(
        MODEL_INFER,
        request_serializer=None,
        response_deserializer=pb.ModelInferResponse.FromString,
    )


class _Shared:
    """Reference-counted channels, one per key; ``release`` hands back the channel to close
    when its last user left (closing is sync or async depending on the channel kind)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[Any, tuple[Any, int]] = {}

    def acquire(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            channel, users = self._channels.get(key) or (make(), 0)
            self._channels[key] = (channel, users + 1)
            return channel

    def release(self, key: Any) -> Any | None:
        with self._lock:
            channel, users = self._channels[key]
            if users > 1:
                self._channels[key] = (channel, users - 1)
                return None
            del self._channels[key]
            return channel

    def users(self, key: Any) -> int:
        with self._lock:
            return self._channels.get(key, (None, 0))[1]


SYNC_CHANNELS = _Shared()
AIO_CHANNELS = _Shared()


def sync_channel_key(url: str) -> str:
    return url


def channel_options(triton: TritonConfig | None = None) -> ChannelOptions:
    """:data:`CHANNEL_OPTIONS` plus balancing: requests round-robin over every address the
    target resolves to (pick_first, gRPC's default, would send them all to the first), DNS
    is re-resolved at most every ``grpc_dns_min_resolution_ms`` when a connection drops, and
    keepalive pings fail a connection to a pod that vanished without closing it."""
    t = triton or TritonConfig()
    return (
        *CHANNEL_OPTIONS,
        ("grpc.lb_policy_name", t.grpc_lb_policy),
        ("grpc.dns_min_time_between_resolutions_ms", t.grpc_dns_min_resolution_ms),
        ("grpc.keepalive_time_ms", t.grpc_keepalive_ms),
        ("grpc.keepalive_timeout_ms", t.grpc_keepalive_timeout_ms),
    )


def aio_channel_key(
    url: str,
    loop: asyncio.AbstractEventLoop | None = None,
    options: ChannelOptions | None = None,
) -> tuple[asyncio.AbstractEventLoop, str, ChannelOptions]:
    """(running loop, URL, options): a ``grpc.aio`` channel only works on the loop it was made
    on, and a channel's options are fixed when it is made."""
    return (loop or asyncio.get_running_loop(), url, options or channel_options())


class AioInferChannel:
    """The process's shared ``grpc.aio`` channel to ``url`` (any gRPC target) on the running
    loop, held by one client until :meth:`close`; ``options`` default to
    :func:`channel_options` of the default config."""

    def __init__(self, url: str, options: ChannelOptions | None = None) -> None:
        self.url = url
        self._key = aio_channel_key(url, options=options)
        opts = self._key[2]
        channel = AIO_CHANNELS.acquire(
            self._key, lambda: grpc.aio.insecure_channel(url, options=opts)
        )
        self.infer = _infer_method(channel)

    async def close(self) -> None:
        channel = AIO_CHANNELS.release(self._key)
        if channel is not None:
            await channel.close()


class TritonRanker:
    """Blocking gRPC client of one ranker model (``model_version`` "" = Triton's choice)."""

    def __init__(
        self,
        url: str,
        model_name: str = "ranker",
        timeout_s: float = 0.1,
        model_version: str = "",
    ) -> None:
        self.url = url
        self.model_name = model_name
        self.model_version = model_version
        self.timeout_s = timeout_s
        self._channel = SYNC_CHANNELS.acquire(
            sync_channel_key(url), lambda: grpc.insecure_channel(url, options=CHANNEL_OPTIONS)
        )
        self._infer = _infer_method(self._channel)
        self._closed = False

    def score(self, x: np.ndarray) -> np.ndarray:
        """float32[B, D] ranker inputs -> float32[B, 3] head probabilities (RANKER_HEADS)."""
        check_batch(x, "TritonRanker.score")
        if x.shape[0] == 0:
            return np.zeros((0, N_HEADS), dtype=np.float32)
        body = encode_request(self.model_name, self.model_version, x)
        try:
            response = self._infer(body, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            message = f"{self.url} {self.model_name}: {rpc_message(exc)}"
            raise RankerError(rpc_reason(exc), message) from exc
        try:
            return decode_scores(response, x.shape[0])
        except ValueError as exc:
            raise RankerError("error", f"{self.model_name}: {exc}") from exc

    def heads(self) -> tuple[str, ...]:
        """Head order declared by the served model's config (parameter ``heads``)."""
        method = self._channel.unary_unary(
            MODEL_CONFIG,
            request_serializer=pb.ModelConfigRequest.SerializeToString,
            response_deserializer=pb.ModelConfigResponse.FromString,
        )
        request = pb.ModelConfigRequest(name=self.model_name, version=self.model_version)
        config = method(request, timeout=max(self.timeout_s, 5.0)).config
        return tuple(config.parameters["heads"].string_value.split(","))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            channel = SYNC_CHANNELS.release(sync_channel_key(self.url))
            if channel is not None:
                channel.close()

    def __enter__(self) -> TritonRanker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class InferenceCounts:
    """Triton's own counters for a model (all versions), from its statistics API.

    ``inference_count`` counts rows (a 500-row request adds 500), ``requests`` counts
    successful requests and ``execution_count`` model executions: requests were merged by
    the dynamic batcher exactly when ``execution_count < requests``. ``executions_by_batch``
    holds (batch rows, executions) pairs. Counters are cumulative: subtract two readings for
    a window's, add windows up.
    """

    requests: int = 0
    execution_count: int = 0
    inference_count: int = 0
    executions_by_batch: tuple[tuple[int, int], ...] = ()

    @property
    def largest_batch(self) -> int:
        """The most rows one execution ran (0 if none ran)."""
        return max((rows for rows, n in self.executions_by_batch if n > 0), default=0)

    def _combine(self, other: InferenceCounts, sign: int) -> InferenceCounts:
        batches = dict(self.executions_by_batch)
        for rows, n in other.executions_by_batch:
            batches[rows] = batches.get(rows, 0) + sign * n
        return InferenceCounts(
            self.requests + sign * other.requests,
            self.execution_count + sign * other.execution_count,
            self.inference_count + sign * other.inference_count,
            tuple(sorted((rows, n) for rows, n in batches.items() if n)),
        )

    def __add__(self, other: InferenceCounts) -> InferenceCounts:
        return self._combine(other, 1)

    def __sub__(self, before: InferenceCounts) -> InferenceCounts:
        return self._combine(before, -1)


def inference_counts(url: str, model_name: str, timeout_s: float = 10.0) -> InferenceCounts:
    """The model's :class:`InferenceCounts` now (subtract two to get a window's)."""
    channel = SYNC_CHANNELS.acquire(
        sync_channel_key(url), lambda: grpc.insecure_channel(url, options=CHANNEL_OPTIONS)
    )
    try:
        method = channel.unary_unary(
            MODEL_STATISTICS,
            request_serializer=pb.ModelStatisticsRequest.SerializeToString,
            response_deserializer=pb.ModelStatisticsResponse.FromString,
        )
        stats = method(pb.ModelStatisticsRequest(name=model_name), timeout=timeout_s)
    finally:
        released = SYNC_CHANNELS.release(sync_channel_key(url))
        if released is not None:
            released.close()
    total = InferenceCounts()
    for version in stats.model_stats:
        total += InferenceCounts(
            version.inference_stats.success.count,
            version.execution_count,
            version.inference_count,
            tuple((b.batch_size, b.compute_infer.count) for b in version.batch_stats),
        )
    return total


def check_batch(x: object, where: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float32:
        raise ValueError(f"{where} x: expected float32[B, D], got {x!r:.80}")
