"""In-process candidate retrieval over a :class:`ServingState`: ANN sources and rule sources.

Each call is a handful of numpy operations over precomputed, sorted arrays, answered as
columns (:class:`~vidrec.pipeline.candidates.Retrieved`): no per-candidate Python work. The
ONNX user tower and FAISS release the GIL, so ANN searches run in a worker thread and do not
stall the event loop.

New uploads join while it serves (:meth:`LocalRetrieval.add_videos`, fed by cold start): the
catalogue and its sorted arrays live in one immutable :class:`_View` that is rebuilt off the
request path and swapped in by one assignment, so a request reads one consistent view and never
waits; only the FAISS index is shared, behind :class:`~vidrec.backends.serving_state.LiveIndex`.

Item-item ("because you watched") gathers precomputed neighbour lists
(:class:`~vidrec.retrieval.NeighbourLists`, built offline with the index) and searches the
index only for anchors without one; uploads get theirs at :meth:`LocalRetrieval.add_videos`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidrec.backends.serving_state import HOUR_MS, Catalogue, LiveIndex, ServingState
from vidrec.config import ServingConfig
from vidrec.features import user_tower_input
from vidrec.pipeline.candidates import Retrieved
from vidrec.ranking.signature import HISTORY_INPUT, USER_X_INPUT
from vidrec.retrieval import NeighbourLists, set_faiss_threads

DEFAULT_SERVING = ServingConfig()


def _first_occurrences(ids: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each id, in input order."""
    _, first = np.unique(ids, return_index=True)
    return np.sort(first)


def _interleaved(rank: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Order taking every group's best, then every group's second, ... (``rank`` = place
    within its group; ties by score), so one anchor cannot fill the list alone."""
    return np.lexsort((-score, rank))


@dataclass(frozen=True)
class _View:
    """The catalogue, item embeddings and every order derived from them, built together."""

    catalogue: Catalogue
    item_embeddings: np.ndarray  # float32[M, E], row i is embedding_ids[i]
    embedding_ids: np.ndarray
    emb_order: np.ndarray
    emb_sorted: np.ndarray
    popular: np.ndarray  # catalogue rows, most popular first
    fresh: np.ndarray  # catalogue rows, newest first
    fresh_age_key: np.ndarray  # -upload_ts of ``fresh`` rows: ascending, for searchsorted
    by_creator: np.ndarray
    creator_sorted: np.ndarray
    by_category: np.ndarray
    category_sorted: np.ndarray
    neighbours: NeighbourLists | None  # item-item lists; replaced whole, never edited

    @classmethod
    def build(
        cls, cat: Catalogue, item_embeddings: np.ndarray, embedding_ids: np.ndarray,
        neighbours: NeighbourLists | None = None,
    ) -> _View:  # fmt: skip
        emb_order = np.argsort(embedding_ids)
        fresh = np.lexsort((cat.video_id, -cat.upload_ts))
        by_creator = np.lexsort((-cat.popularity, cat.creator_id))
        by_category = np.lexsort((-cat.popularity, cat.category))
        return cls(
            catalogue=cat,
            item_embeddings=item_embeddings,
            embedding_ids=embedding_ids,
            emb_order=emb_order,
            emb_sorted=embedding_ids[emb_order],
            popular=np.lexsort((cat.video_id, -cat.popularity)),
            fresh=fresh,
            fresh_age_key=-cat.upload_ts[fresh],
            by_creator=by_creator,
            creator_sorted=cat.creator_id[by_creator],
            by_category=by_category,
            category_sorted=cat.category[by_category],
            neighbours=neighbours,
        )


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
        self.state = state
        self.cfg = cfg
        self.index = LiveIndex(state.index)
        self._view = _View.build(
            state.catalogue, state.item_embeddings, state.embedding_ids, state.neighbours
        )
        self._writer = threading.Lock()  # one add_videos at a time; readers never take it

    @property
    def catalogue(self) -> Catalogue:
        """The live catalogue (the loaded one plus every video added since)."""
        return self._view.catalogue

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
            view = _View.build(cat, embeddings, emb_ids[keep], old.neighbours)
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

    # --- records -------------------------------------------------------------------------

    def _records(
        self,
        ids: np.ndarray,
        scores: np.ndarray,
        anchors: np.ndarray | None = None,
        view: _View | None = None,
    ) -> Retrieved:
        """Metadata from the catalogue for each id, as columns; ids unknown to it are dropped."""
        cat = (view or self._view).catalogue
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

    def _catalogue_rows(self, view: _View, rows: np.ndarray, scores: np.ndarray) -> Retrieved:
        return self._records(view.catalogue.video_id[rows], scores, view=view)

    # --- ANN sources ---------------------------------------------------------------------

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

    def _two_tower(self, user_vector: np.ndarray, history: Sequence[int], k: int) -> Retrieved:
        ids, scores = self.index.search(self.user_embedding(user_vector, history), k)
        valid = ids[0] >= 0
        return self._records(ids[0][valid], scores[0][valid])

    async def two_tower(self, user_vector: np.ndarray, history: Sequence[int], k: int) -> Retrieved:
        return await asyncio.to_thread(self._two_tower, user_vector, history, k)

    def _related(self, video_ids: Sequence[int], k: int) -> Retrieved:
        """Neighbours of the anchors, interleaved by rank: from the precomputed lists where
        an anchor has one (and they are long enough), else from one index search per anchor."""
        v = self._view
        anchors = np.asarray(list(dict.fromkeys(int(v) for v in video_ids)), dtype=np.int64)
        pos = np.clip(np.searchsorted(v.emb_sorted, anchors), 0, v.emb_sorted.size - 1)
        found = v.emb_sorted[pos] == anchors
        anchors, pos = anchors[found], pos[found]
        if anchors.size == 0 or k < 1:
            return Retrieved.empty()
        lists = v.neighbours
        listed = (
            lists.has(anchors)
            if lists is not None and lists.k >= k
            else np.zeros(anchors.size, dtype=bool)
        )
        parts = [lists.gather(anchors[listed], k)] if lists is not None and listed.any() else []
        if not listed.all():
            queries = v.item_embeddings[v.emb_order[pos[~listed]]]
            ids, scores = self.index.search(queries, k + 1)  # +1: the anchor finds itself
            anchor_of = np.broadcast_to(anchors[~listed, None], ids.shape)
            parts.append((ids, scores, anchor_of, np.broadcast_to(np.arange(k + 1), ids.shape)))
        ids, scores, anchor_of, rank = (
            np.concatenate([p[i].ravel() for p in parts]) for i in range(4)
        )
        keep = (ids >= 0) & (ids != anchor_of) & ~np.isin(ids, anchors)
        ids, scores, anchor_of, rank = ids[keep], scores[keep], anchor_of[keep], rank[keep]
        order = _interleaved(rank, scores)
        ids, scores, anchor_of = ids[order], scores[order], anchor_of[order]
        first = _first_occurrences(ids)[:k]
        return self._records(ids[first], scores[first], anchor_of[first], v)

    async def related(self, video_ids: Sequence[int], k: int) -> Retrieved:
        """On the event loop when every anchor has a list (a gather costs microseconds, less
        than the thread hop); in a worker thread when an index search (milliseconds, GIL
        released) is needed."""
        lists = self._view.neighbours
        anchors = np.asarray(video_ids, dtype=np.int64)
        if lists is not None and lists.k >= k and bool(lists.has(anchors).all()):
            return self._related(video_ids, k)
        return await asyncio.to_thread(self._related, video_ids, k)

    # --- rule sources ----------------------------------------------------------------------

    async def trending(self, region: str, k: int) -> Retrieved:
        """Top videos by decayed clicks in ``region`` over the last 24 h of the log."""
        ids, scores = self.state.trending.get(region, (np.zeros(0, np.int64), np.zeros(0)))
        return self._records(ids[:k], scores[:k])

    async def popular(self, k: int) -> Retrieved:
        v = self._view
        rows = v.popular[:k]
        return self._catalogue_rows(v, rows, v.catalogue.popularity[rows])

    async def fresh(self, k: int, now_ms: int) -> Retrieved:
        """Newest uploads first within ``fresh_max_age_h``; the newest overall if none are."""
        v = self._view
        # Newest first, so uploads at or before now start at `lo` (the key is precomputed:
        # negating a million timestamps per request cost more than the rest of the source).
        lo = int(np.searchsorted(v.fresh_age_key, -now_ms, side="left"))
        oldest = now_ms - int(self.cfg.fresh_max_age_h * HOUR_MS)
        hi = int(np.searchsorted(v.fresh_age_key, -oldest, side="right"))
        rows = v.fresh[lo : hi if hi > lo else lo + k][:k]
        age_h = (now_ms - v.catalogue.upload_ts[rows]) / HOUR_MS
        return self._catalogue_rows(v, rows, 0.5 ** (age_h / self.cfg.freshness_half_life_h))

    async def same_creator(self, video_ids: Sequence[int], k: int) -> Retrieved:
        """Other videos by the anchors' creators, most popular first, creators interleaved."""
        v = self._view
        cat = v.catalogue
        anchors = np.asarray(list(dict.fromkeys(int(i) for i in video_ids)), dtype=np.int64)
        rows, known = cat.rows(anchors)
        anchors, creators = anchors[known], cat.creator_id[rows[known]]
        _, first = np.unique(creators, return_index=True)
        anchors, creators = anchors[np.sort(first)], creators[np.sort(first)]
        lo = np.searchsorted(v.creator_sorted, creators, side="left")
        hi = np.minimum(np.searchsorted(v.creator_sorted, creators, side="right"), lo + k + 1)
        counts = hi - lo
        if counts.sum() == 0:
            return Retrieved.empty()
        group = np.repeat(np.arange(creators.size), counts)
        rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        picked = v.by_creator[lo[group] + rank]
        keep = ~np.isin(cat.video_id[picked], anchors)
        picked, group, rank = picked[keep], group[keep], rank[keep]
        order = _interleaved(rank, cat.popularity[picked])[:k]
        return self._records(
            cat.video_id[picked[order]], cat.popularity[picked[order]], anchors[group[order]], v
        )

    async def by_category(self, category: int, k: int) -> Retrieved:
        v = self._view
        lo = int(np.searchsorted(v.category_sorted, category, side="left"))
        hi = int(np.searchsorted(v.category_sorted, category, side="right"))
        rows = v.by_category[lo : min(hi, lo + k)]
        return self._catalogue_rows(v, rows, v.catalogue.popularity[rows])
