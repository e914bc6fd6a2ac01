"""The ranker client the request pipeline awaits: Triton over gRPC (asyncio), one request
per page view.

Batch = the candidate set: Triton's dynamic batcher merges concurrent page views, so the
client never splits or pads. The request's model variant picks the Triton model version (the
rollout's routing table), so a canary and the stable model are scored side by side.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.ranking.signature import N_HEADS, RANKER_INPUT, RANKER_OUTPUT
from vidrec.ranking.triton_client import triton_reason


class TritonRankerClient:
    """:class:`~vidrec.pipeline.clients.RankerClient` for one Triton model."""

    def __init__(
        self,
        url: str,
        model_name: str,
        timeout_s: float,
        version_for_variant: Callable[[str], str],
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.version_for_variant = version_for_variant
        self.breaker = breaker or CircuitBreaker(5, 5.0)
        self._client: grpcaio.InferenceServerClient | None = None
        self._outputs = [grpcclient.InferRequestedOutput(RANKER_OUTPUT)]

    def _channel(self) -> grpcaio.InferenceServerClient:
        # Created on first use: a grpc.aio channel binds to the running event loop.
        if self._client is None:
            self._client = grpcaio.InferenceServerClient(self.url)
        return self._client

    async def score(self, x: np.ndarray, variant: str) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float32:
            raise ValueError(f"TritonRankerClient.score x: expected float32[B, D], got {x!r:.80}")
        if x.shape[0] == 0:
            return np.zeros((0, N_HEADS), dtype=np.float32)
        version = self.version_for_variant(variant)
        request = grpcclient.InferInput(RANKER_INPUT, list(x.shape), "FP32")
        request.set_data_from_numpy(np.ascontiguousarray(x))

        async def infer() -> np.ndarray:
            try:
                result = await self._channel().infer(
                    self.model_name,
                    [request],
                    model_version=version,
                    outputs=self._outputs,
                    client_timeout=self.timeout_s,
                )
            except InferenceServerException as exc:
                where = f"{self.url} {self.model_name} v{version or 'default'}"
                raise DependencyError(triton_reason(exc), f"{where}: {exc}") from exc
            return result.as_numpy(RANKER_OUTPUT)

        # A little longer than the RPC's own deadline, so Triton's answer (or its
        # DEADLINE_EXCEEDED) wins the race and the reason is precise.
        scores = await self.breaker.call(infer, self.timeout_s * 1.5)
        if scores is None or scores.shape != (x.shape[0], N_HEADS):
            got = None if scores is None else scores.shape
            raise DependencyError("error", f"{self.model_name}: output {RANKER_OUTPUT} is {got}")
        return scores

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
