"""Score candidates with the ranker served by Triton, over gRPC.

One request per call, batch = the candidate set: Triton's dynamic batcher merges requests
from concurrent page views, so the client never splits or pads. Failures are raised as
:class:`RankerError` with a ``reason`` the pipeline turns into its degradation metric.
"""

from __future__ import annotations

from types import TracebackType

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from vidrec.ranking.signature import N_HEADS, RANKER_INPUT, RANKER_OUTPUT


class RankerError(RuntimeError):
    """The ranker could not score: ``reason`` is ``timeout``, ``unavailable`` or ``error``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"ranker {reason}: {message}")
        self.reason = reason


def triton_reason(exc: InferenceServerException) -> str:
    status = str(exc.status() or "")
    if "DEADLINE_EXCEEDED" in status or "Deadline" in str(exc):
        return "timeout"
    if "UNAVAILABLE" in status:
        return "unavailable"
    return "error"


class TritonRanker:
    """gRPC client of one ranker model (``model_version`` "" = Triton's choice)."""

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
        self._client = grpcclient.InferenceServerClient(url)
        self._outputs = [grpcclient.InferRequestedOutput(RANKER_OUTPUT)]

    def score(self, x: np.ndarray) -> np.ndarray:
        """float32[B, D] ranker inputs -> float32[B, 3] head probabilities (RANKER_HEADS)."""
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float32:
            raise ValueError(f"TritonRanker.score x: expected float32[B, D], got {x!r:.80}")
        if x.shape[0] == 0:
            return np.zeros((0, N_HEADS), dtype=np.float32)
        request = grpcclient.InferInput(RANKER_INPUT, list(x.shape), "FP32")
        request.set_data_from_numpy(np.ascontiguousarray(x))
        try:
            result = self._client.infer(
                self.model_name,
                [request],
                model_version=self.model_version,
                outputs=self._outputs,
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise RankerError(triton_reason(exc), f"{self.url} {self.model_name}: {exc}") from exc
        scores = result.as_numpy(RANKER_OUTPUT)
        if scores is None or scores.shape != (x.shape[0], N_HEADS):
            got = None if scores is None else scores.shape
            raise RankerError("error", f"{self.model_name}: output {RANKER_OUTPUT} shape {got}")
        return scores

    def heads(self) -> tuple[str, ...]:
        """Head order declared by the served model's config (parameter ``heads``)."""
        config = self._client.get_model_config(self.model_name, self.model_version).config
        return tuple(config.parameters["heads"].string_value.split(","))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonRanker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
