"""The ranker client the request pipeline awaits: Triton over gRPC (asyncio), one request
per page view.

Batch = the candidate set: Triton's dynamic batcher merges concurrent page views, so the
client never splits or pads. The request's model variant picks the Triton model version (the
rollout's routing table), so a canary and the stable model are scored side by side; the
version Triton reports having run names the variant that answered (under an upstream split,
KServe or Gateway API, that is the only way serving learns it). The
request goes out as pre-encoded wire bytes on the process's shared channel to Triton
(:mod:`vidrec.ranking.triton_client` says why that is the cheap way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np

from vidrec.config import ServingConfig, TritonConfig
from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.clients import RankerAnswer
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.ranking.signature import N_HEADS
from vidrec.ranking.triton_client import (
    AioInferChannel,
    ChannelOptions,
    channel_options,
    check_batch,
    decode_scores,
    encode_request,
    rpc_message,
    rpc_reason,
)


class TritonRankerClient:
    """:class:`~vidrec.pipeline.clients.RankerClient` for one Triton model."""

    def __init__(
        self,
        url: str,
        model_name: str,
        timeout_s: float,
        version_for_variant: Callable[[str], str],
        breaker: CircuitBreaker | None = None,
        answered_variant: Callable[[str, str], str] | None = None,
        channel_options: ChannelOptions | None = None,
    ) -> None:
        self.url = url  # any gRPC target (TritonConfig.ranker_target)
        self.channel_options = channel_options
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.version_for_variant = version_for_variant
        self.answered_variant = answered_variant or (lambda asked, _version: asked)
        self.breaker = breaker or CircuitBreaker.of(ServingConfig(), "ranker")
        self._channel: AioInferChannel | None = None

    def _infer(self) -> Callable[..., Any]:
        # Taken on first use: a grpc.aio channel binds to the running event loop.
        if self._channel is None:
            self._channel = AioInferChannel(self.url, self.channel_options)
        return self._channel.infer

    async def score(self, x: np.ndarray, variant: str) -> RankerAnswer:
        check_batch(x, "TritonRankerClient.score")
        if x.shape[0] == 0:
            return RankerAnswer(np.zeros((0, N_HEADS), dtype=np.float32), variant)
        version = self.version_for_variant(variant)
        body = encode_request(self.model_name, version, x)

        async def infer() -> RankerAnswer:
            try:
                response = await self._infer()(body, timeout=self.timeout_s)
            except grpc.RpcError as exc:
                where = f"{self.url} {self.model_name} v{version or 'default'}"
                raise DependencyError(rpc_reason(exc), f"{where}: {rpc_message(exc)}") from exc
            try:
                heads = decode_scores(response, x.shape[0])
            except ValueError as exc:
                raise DependencyError("error", f"{self.model_name}: {exc}") from exc
            return RankerAnswer(heads, self.answered_variant(variant, response.model_version))

        # A little longer than the RPC's own deadline, so Triton's answer (or its
        # DEADLINE_EXCEEDED) wins the race and the reason is precise.
        return await self.breaker.call(infer, self.timeout_s * 1.5)

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()


def ranker_channel_options(triton: TritonConfig) -> ChannelOptions:
    """The channel options of the serving ranker (balancing, keepalive) from ``triton``: the
    API layer composes the client without reaching into :mod:`vidrec.ranking`."""
    return channel_options(triton)
