"""Retrieval as a separate service: the wire format and the client the Recommender uses.

With ``ServingConfig.retrieval_mode = "remote"`` the Recommender composes the BentoML
``Retrieval`` service with ``bentoml.depends(Retrieval, url=...)`` instead of holding the ANN
index itself — retrieval then scales (and may move to GPU FAISS) on its own, at the price of one
local HTTP hop per source. Results travel columnar (one list per field), not one JSON object
per video.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.candidates import Retrieved

FIELDS = ("video_id", "score", "creator_id", "category", "upload_ts", "anchor_video_id")


def to_columns(found: Retrieved) -> dict[str, list[Any]]:
    return {f: getattr(found, f).tolist() for f in FIELDS}


def from_columns(cols: dict[str, list[Any]]) -> Retrieved:
    return Retrieved.of(*(cols[f] for f in FIELDS))


def b64_floats(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode()


class _AsyncMethods(Protocol):
    def __getattr__(self, name: str) -> Any: ...


class _Proxy(Protocol):
    """What ``bentoml.depends(Retrieval, url=...)`` gives: ``proxy.to_async.<api>(**kw)``."""

    to_async: _AsyncMethods


class RemoteRetrieval:
    """:class:`~vidrec.pipeline.clients.RetrievalClient` over the BentoML Retrieval service."""

    def __init__(self, proxy: _Proxy) -> None:
        self.proxy = proxy

    async def _call(self, api: str, **kwargs: Any) -> Retrieved:
        try:
            cols = await getattr(self.proxy.to_async, api)(**kwargs)
        except TimeoutError as exc:
            raise DependencyError("timeout", f"retrieval.{api}") from exc
        except Exception as exc:  # connection refused, 5xx: the service is not answering
            raise DependencyError("unavailable", f"retrieval.{api}: {exc}") from exc
        return from_columns(cols)

    async def two_tower(self, user_vector: np.ndarray, history: Sequence[int], k: int) -> Retrieved:
        return await self._call(
            "two_tower", user_vector_b64=b64_floats(user_vector), history=list(history), k=k
        )

    async def related(self, video_ids: Sequence[int], k: int) -> Retrieved:
        return await self._call("related", video_ids=list(video_ids), k=k)

    async def trending(self, region: str, k: int) -> Retrieved:
        return await self._call("trending", region=region, k=k)

    async def fresh(self, k: int, now_ms: int) -> Retrieved:
        return await self._call("fresh", k=k, now_ms=now_ms)

    async def same_creator(self, video_ids: Sequence[int], k: int) -> Retrieved:
        return await self._call("same_creator", video_ids=list(video_ids), k=k)

    async def by_category(self, category: int, k: int) -> Retrieved:
        return await self._call("by_category", category=category, k=k)

    async def popular(self, k: int) -> Retrieved:
        return await self._call("popular", k=k)
