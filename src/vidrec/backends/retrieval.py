"""In-process candidate retrieval over a :class:`ServingState`: every registered retriever.

A source asks ``retrieve(name, query, k)``; the retriever of that name
(:mod:`vidrec.pipeline.retrievers`, defined next to its source) answers from one immutable
:class:`_View`: a handful of numpy operations over precomputed, sorted arrays, answered as
columns (:class:`~vidrec.pipeline.candidates.Retrieved`), no per-candidate Python work. The
ONNX user tower and FAISS release the GIL, so retrievers that search run in a worker thread and
do not stall the event loop.

New uploads join while it serves (:meth:`LocalRetrieval.add_videos`, fed by cold start): the
catalogue, the item embeddings and every retriever's precomputed order live in one view that is
rebuilt off the request path and swapped in by one assignment, so a request reads one
consistent view and never waits; only the FAISS index is shared, behind
:class:`~vidrec.backends.serving_state.LiveIndex`. Uploads get their item-item lists at
:meth:`LocalRetrieval.add_videos`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidrec.backends.serving_state import LiveIndex, ServingState
from vidrec.config import ServingConfig
from vidrec.contracts.catalogue import Catalogue
from vidrec.features import user_tower_input
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import RETRIEVERS, Query, import_sources, registered
from vidrec.ranking.signature import HISTORY_INPUT, USER_X_INPUT
from vidrec.retrieval import NeighbourLists, set_faiss_threads

DEFAULT_SERVING = ServingConfig()


@dataclass(frozen=True)
class _View:
    """The catalogue, item embeddings and every order derived from them, built together: the
    :class:`~vidrec.pipeline.retrievers.Corpus` a retriever reads."""

    cfg: ServingConfig
    catalogue: Catalogue
    item_embeddings: np.ndarray  # float32[M, E], row i is embedding_ids[i]
    embedding_ids: np.ndarray
    emb_order: np.ndarray
    emb_sorted: np.ndarray
    neighbours: NeighbourLists | None  # item-item lists; replaced whole, never edited
    trending: Mapping[str, tuple[np.ndarray, np.ndarray]]  # live: swapped per region
    index: LiveIndex
    embed: Callable[[np.ndarray, tuple[int, ...]], np.ndarray]
    derived: dict[str, Any] = field(default_factory=dict)  # retriever name -> its prepare()

    @classmethod
    def build(
        cls, base: _View | None, cat: Catalogue, item_embeddings: np.ndarray,
        embedding_ids: np.ndarray, **shared: Any,
    ) -> _View:  # fmt: skip
        """A view of ``cat``; ``shared`` (cfg, neighbours, trending, index, embed) defaults to
        ``base``'s. Every registered retriever's ``prepare`` runs here, off the request path
        (sources are imported first: :meth:`LocalRetrieval.__init__`)."""
        if base is not None:
            shared = {k: shared.get(k, getattr(base, k)) for k in
                      ("cfg", "neighbours", "trending", "index", "embed")}  # fmt: skip
        emb_order = np.argsort(embedding_ids)
        derived = {r.name: r.prepare(cat) for r in RETRIEVERS.values() if r.prepare is not None}
        return cls(catalogue=cat, item_embeddings=item_embeddings,
                   embedding_ids=embedding_ids, emb_order=emb_order,
                   emb_sorted=embedding_ids[emb_order], derived=derived, **shared)  # fmt: skip

    def prepared(self, name: str) -> Any:
        return self.derived[name]

    def records(
        self, ids: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None = None
    ) -> Retrieved:
        """Metadata from the catalogue for each id, as columns; ids unknown to it are dropped."""
        cat = self.catalogue
        rows, known = cat.rows(ids)
        rows = rows[known]
        return Retrieved.of(
            ids[known],
            scores[known],
            cat.creator_id[rows],
            cat.category[rows],
            cat.upload_ts[rows],
            None if anchors is None else anchors[known],
        )

    def rows(self, rows: np.ndarray, scores: np.ndarray) -> Retrieved:
        return self.records(self.catalogue.video_id[rows], scores)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)

    def user_embedding(self, user_vector: np.ndarray, history: tuple[int, ...]) -> np.ndarray:
        return self.embed(user_vector, history)


@dataclass(frozen=True)
class NewVideos:
    """Columns of videos to add at runtime, aligned; ``embeddings`` from the item tower."""

    video_id: np.ndarray  # int64[N]
    creator_id: np.ndarray
    category: np.ndarray  # primary category, -1 when none
    upload_ts: np.ndarray
    embeddings: np.ndarray  # float32[N, E], L2-normalised


class LocalRetrieval:
    """:class:`~vidrec.pipeline.clients.RetrievalClient` answered from memory."""

    def __init__(self, state: ServingState, cfg: ServingConfig = DEFAULT_SERVING) -> None:
        set_faiss_threads(cfg.faiss_threads)  # the process that serves searches
        import_sources(cfg.source_modules)  # before the view: their orders are built with it
        self.state = state
        self.cfg = cfg
        self.index = LiveIndex(state.index)
        self._view = _View.build(
            None, state.catalogue, state.item_embeddings, state.embedding_ids, cfg=cfg,
            neighbours=state.neighbours, trending=state.trending, index=self.index,
            embed=self.user_embedding,
        )  # fmt: skip
        self._writer = threading.Lock()  # one add_videos at a time; readers never take it

    @property
    def catalogue(self) -> Catalogue:
        """The live catalogue (the loaded one plus every video added since)."""
        return self._view.catalogue

    async def retrieve(self, name: str, query: Query, k: int) -> Retrieved:
        """The list ``name``; ``KeyError`` for a name no source registered."""
        found = RETRIEVERS.get(name) or registered(name)  # the latter raises, naming the known
        view = self._view  # one consistent view for the whole call
        if found.offloaded(view, query, k):
            return await asyncio.to_thread(found.retrieve, view, query, k)
        return found.retrieve(view, query, k)

    def add_videos(self, videos: NewVideos) -> int:
        """Make new videos retrievable (fresh, same-creator, category, ANN, related anchors).

        Blocking (rebuilds the sorted arrays: O(M log M), and one batch search gives the new
        videos their item-item lists); call it off the event loop. Ids already known are
        ignored. Returns how many videos were new.
        """
        with self._writer:
            old = self._view
            cat = old.catalogue.with_videos(
                videos.video_id, videos.creator_id, videos.category, videos.upload_ts
            )
            new = ~np.isin(videos.video_id, old.embedding_ids)
            emb_ids = np.concatenate([old.embedding_ids, videos.video_id[new]])
            _, first = np.unique(emb_ids, return_index=True)  # a batch may repeat an id
            keep = np.sort(first)
            embeddings = np.concatenate(
                [old.item_embeddings, videos.embeddings.astype(np.float32)[new]]
            )[keep]
            # Metadata first: an id the index returns always has a catalogue row.
            view = _View.build(old, cat, embeddings, emb_ids[keep])
            self._view = view
            self.index.add(videos.embeddings, videos.video_id)
            if view.neighbours is not None and view.embedding_ids.size > old.embedding_ids.size:
                # Until this swap the new videos are searched as anchors (no list yet).
                lists = self._lists_with(view.neighbours, view, old.embedding_ids.size)
                self._view = dataclasses.replace(view, neighbours=lists)
            return int(cat.video_id.size - old.catalogue.video_id.size)

    def _lists_with(self, lists: NeighbourLists, view: _View, n_old: int) -> NeighbourLists:
        """``lists`` plus those of ``view``'s embeddings from row ``n_old`` on (one search
        over the index that already holds them), entered symmetrically if configured."""
        found, scores = self.index.search(view.item_embeddings[n_old:], lists.k + 1)
        return lists.with_new_videos(
            view.embedding_ids[n_old:], found, scores, self.cfg.neighbours_symmetric
        )

    # --- the user tower ------------------------------------------------------------------

    def user_embedding(self, user_vector: np.ndarray, history: Sequence[int]) -> np.ndarray:
        """float32[1, E] from the ONNX user tower (the torch tower's export)."""
        h = self.state.history_len
        hist = np.full((1, h), -1, dtype=np.int64)
        recent = np.asarray(list(history)[:h], dtype=np.int64)
        hist[0, : recent.size] = recent
        feeds = {
            USER_X_INPUT: user_tower_input(np.asarray(user_vector, np.float32)[None, :]),
            HISTORY_INPUT: hist,
        }
        (embedding,) = self.state.user_tower.run(None, feeds)
        return np.asarray(embedding, dtype=np.float32)
