"""The dependencies a pipeline talks to, as small protocols.

Retrieval answers in columns (:class:`~vidrec.pipeline.candidates.Retrieved`), so a source
wraps its result without building an object per video.

Stages receive these injected. Implementations live in ``vidrec.backends``: in-process ones
(the retrieval index, Redis feature fetcher and Triton client used directly) and remote ones
(the BentoML Retrieval / Features services over HTTP). All raise
:class:`vidrec.pipeline.base.DependencyError` for failures a policy may absorb.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from vidrec.pipeline.base import Candidate, UserContext
from vidrec.pipeline.candidates import Retrieved, RetrievedVideo
from vidrec.pipeline.retrievers import Query


class RetrievalClient(Protocol):
    async def retrieve(self, name: str, query: Query, k: int) -> Retrieved:
        """Up to ``k`` videos of the list ``name`` (a registered retriever,
        :mod:`vidrec.pipeline.retrievers`), best first."""
        ...


class FeatureClient(Protocol):
    async def user_context(self, user_id: int, region: str | None) -> UserContext:
        """User vector + session state in one round trip; unknown user → ``known=False``."""
        ...

    async def video_vectors(
        self, video_ids: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(matrix float32[N, VIDEO_SPEC.dim], present bool[N])``; absent rows are zeros."""
        ...


class RankerAnswer(NamedTuple):
    heads: np.ndarray  # calibrated float32[B, 3], RANKER_HEADS order
    variant: str  # the variant whose model answered: the label of the request from now on


class RankerClient(Protocol):
    async def score(self, x: np.ndarray, variant: str) -> RankerAnswer:
        """Scores of ranker inputs ``x`` for a request of ``variant``, and the variant that
        really answered (an upstream split may send the request elsewhere)."""
        ...


class ImpressionSink(Protocol):
    async def log(self, request_id: str, variant: str, user_id: int | None,
                  served: Sequence[Candidate], now_ms: int) -> None: ...  # fmt: skip


__all__ = [
    "FeatureClient",
    "ImpressionSink",
    "Query",
    "RankerAnswer",
    "RankerClient",
    "RetrievalClient",
    "Retrieved",
    "RetrievedVideo",
]
