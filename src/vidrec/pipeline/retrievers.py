"""Generic retrieval: a source asks for one named list; the retriever of that name answers it.

A candidate source is one file (``pipeline/sources/<name>.py``) holding three things: the stage
(what to ask, from the request), its retrieval function registered here with
:func:`retriever` (how the in-process backend answers, over a :class:`Corpus`), and the
sentence that explains what it found (``explain``,
:class:`~vidrec.pipeline.sources.base.RetrievalSource`).
Every backend answers every registered name through one call,
``RetrievalClient.retrieve(name, query, k)``: in process
(:class:`~vidrec.backends.retrieval.LocalRetrieval`) or over HTTP (one generic endpoint of the
BentoML Retrieval service). Nothing else lists the sources.
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vidrec.config import ServingConfig
from vidrec.contracts.catalogue import Catalogue
from vidrec.errors import InputError
from vidrec.pipeline.candidates import Retrieved


@dataclass(frozen=True)
class Query:
    """What a retrieval function may use from the request; a source fills what it needs."""

    user_vector: np.ndarray | None = None  # the user's feature vector (two-tower)
    video_ids: tuple[int, ...] = ()  # history, anchors or seeds, most relevant first
    region: str = ""
    category: int = -1
    now_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        """The wire form (the vector as base64 float32 bytes, not a JSON float list)."""
        vector = None
        if self.user_vector is not None:
            raw = np.ascontiguousarray(self.user_vector, dtype=np.float32).tobytes()
            vector = base64.b64encode(raw).decode()
        return {
            "user_vector_b64": vector,
            "video_ids": [int(v) for v in self.video_ids],
            "region": self.region,
            "category": int(self.category),
            "now_ms": int(self.now_ms),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Query:
        """Inverse of :meth:`to_json`; a wrong field is a ``ValueError`` naming it."""
        vector = raw.get("user_vector_b64")
        try:
            user_vector = (
                None
                if vector is None
                else np.frombuffer(base64.b64decode(vector, validate=True), np.float32)
            )
        except ValueError as exc:
            raise ValueError(f"query.user_vector_b64: not base64 float32 ({exc})") from None
        ids = raw.get("video_ids", [])
        if not isinstance(ids, list) or not all(isinstance(v, int) for v in ids):
            raise ValueError("query.video_ids: must be a list of integers")
        for key, kind in (("region", str), ("category", int), ("now_ms", int)):
            if key in raw and not isinstance(raw[key], kind):
                raise ValueError(f"query.{key}: must be {kind.__name__}")
        return cls(user_vector, tuple(ids), raw.get("region", ""), raw.get("category", -1),
                   raw.get("now_ms", 0))  # fmt: skip


class Neighbours(Protocol):
    """Precomputed item-item lists (:class:`vidrec.retrieval.NeighbourLists`)."""

    @property
    def k(self) -> int: ...

    def has(self, anchors: np.ndarray) -> np.ndarray: ...

    def gather(
        self, anchors: np.ndarray, k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


class Corpus(Protocol):
    """What an in-process retrieval function reads: one consistent view of the catalogue, the
    item embeddings and the indexes over them (uploads swap in a new view, never edit one)."""

    @property
    def cfg(self) -> ServingConfig: ...

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def item_embeddings(self) -> np.ndarray:
        """float32[M, E], row i is ``embedding_ids[i]``."""
        ...

    @property
    def embedding_ids(self) -> np.ndarray: ...

    @property
    def emb_order(self) -> np.ndarray:
        """argsort of ``embedding_ids``."""
        ...

    @property
    def emb_sorted(self) -> np.ndarray: ...

    @property
    def neighbours(self) -> Neighbours | None: ...

    @property
    def trending(self) -> Mapping[str, tuple[np.ndarray, np.ndarray]]:
        """Region -> (ids, scores), best first."""
        ...

    def prepared(self, name: str) -> Any:
        """What retriever ``name``'s ``prepare`` built for this view."""
        ...

    def records(
        self, ids: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None = None
    ) -> Retrieved:
        """Catalogue metadata for each id, as columns; ids unknown to it are dropped."""
        ...

    def rows(self, rows: np.ndarray, scores: np.ndarray) -> Retrieved:
        """:meth:`records` for catalogue rows."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """ANN search of the item index (``ids`` -1 where fewer than ``k``)."""
        ...

    def user_embedding(self, user_vector: np.ndarray, history: tuple[int, ...]) -> np.ndarray:
        """float32[1, E] from the user tower."""
        ...


RetrieveFn = Callable[[Corpus, Query, int], Retrieved]


@dataclass(frozen=True)
class Retriever:
    name: str
    retrieve: RetrieveFn
    # Per-view precomputation (e.g. a sorted order), rebuilt when uploads swap the view in.
    prepare: Callable[[Catalogue], Any] | None = None
    # Run in a worker thread: searches and model calls that release the GIL for milliseconds.
    blocking: bool | Callable[[Corpus, Query, int], bool] = False

    def offloaded(self, corpus: Corpus, query: Query, k: int) -> bool:
        return self.blocking(corpus, query, k) if callable(self.blocking) else self.blocking


RETRIEVERS: dict[str, Retriever] = {}


def retriever(
    name: str,
    *,
    prepare: Callable[[Catalogue], Any] | None = None,
    blocking: bool | Callable[[Corpus, Query, int], bool] = False,
) -> Callable[[RetrieveFn], RetrieveFn]:
    """Register the decorated function as the in-process answer to ``retrieve(name, ...)``."""

    def register(fn: RetrieveFn) -> RetrieveFn:
        if name in RETRIEVERS and RETRIEVERS[name].retrieve is not fn:
            raise ValueError(f"retriever {name!r} registered twice")
        RETRIEVERS[name] = Retriever(name, fn, prepare, blocking)
        return fn

    return register


def import_sources(modules: Sequence[str] = ()) -> None:
    """Register the built-in sources and those of ``modules`` (``ServingConfig.source_modules``);
    a module that cannot be imported is an :class:`~vidrec.errors.InputError` naming it."""
    import vidrec.pipeline.sources  # noqa: F401  (registers every built-in source)

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(
                f"serving.source_modules: cannot import {module!r} ({exc}); set "
                "VIDREC_SERVING__SOURCE_MODULES to modules on the Python path"
            ) from None


def registered(name: str) -> Retriever:
    """The retriever ``name``; ``KeyError`` names the known ones."""
    import_sources()
    try:
        return RETRIEVERS[name]
    except KeyError:
        raise KeyError(f"no retriever {name!r}; known: {sorted(RETRIEVERS)}") from None
