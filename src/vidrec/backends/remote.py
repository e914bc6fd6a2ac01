"""Retrieval as a separate service: the wire format and the client the Recommender uses.

With ``ServingConfig.retrieval_mode = "remote"`` the Recommender composes the BentoML
``Retrieval`` service with ``bentoml.depends(Retrieval, url=...)`` instead of holding the ANN
index itself — retrieval then scales (and may move to GPU FAISS) on its own, at the price of one
local HTTP hop per source. One generic endpoint, ``retrieve(name, query, k)``, answers every
registered retriever, so a new source needs no new endpoint. Results travel columnar (one list
per field), not one JSON object per video.
"""

from __future__ import annotations

from typing import Any, Protocol

from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Query

FIELDS = ("video_id", "score", "creator_id", "category", "upload_ts", "anchor_video_id")


def to_columns(found: Retrieved) -> dict[str, list[Any]]:
    return {f: getattr(found, f).tolist() for f in FIELDS}


def from_columns(cols: dict[str, list[Any]]) -> Retrieved:
    return Retrieved.of(*(cols[f] for f in FIELDS))


class RetrieveEndpoint(Protocol):
    """The Retrieval service's ``retrieve`` endpoint: ``bentoml.depends(Retrieval,
    url=...).to_async``, or the lean host's HTTP client."""

    async def retrieve(self, *, name: str, query: dict[str, Any], k: int) -> Any: ...


class RemoteRetrieval:
    """:class:`~vidrec.pipeline.clients.RetrievalClient` over the BentoML Retrieval service."""

    def __init__(self, endpoint: RetrieveEndpoint) -> None:
        self.endpoint = endpoint

    async def retrieve(self, name: str, query: Query, k: int) -> Retrieved:
        try:
            cols = await self.endpoint.retrieve(name=name, query=query.to_json(), k=k)
        except TimeoutError as exc:
            raise DependencyError("timeout", f"retrieval.{name}") from exc
        except Exception as exc:  # connection refused, 5xx: the service is not answering
            raise DependencyError("unavailable", f"retrieval.{name}: {exc}") from exc
        return from_columns(cols)
