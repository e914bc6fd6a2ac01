"""In-process candidate retrieval over a :class:`ServingState`: ANN sources and rule sources.

Each call is a handful of numpy operations over precomputed, sorted arrays (no per-candidate
Python work besides building the returned records). The ONNX user tower and FAISS release the
GIL, so the two ANN sources run in a worker thread and do not stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from vidrec.config import ServingConfig
from vidrec.features import user_tower_input
from vidrec.pipeline.clients import RetrievedVideo
from vidrec.ranking.signature import HISTORY_INPUT, USER_X_INPUT
from vidrec.serving.state import HOUR_MS, ServingState

DEFAULT_SERVING = ServingConfig()


def _first_occurrences(ids: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each id, in input order."""
    _, first = np.unique(ids, return_index=True)
    return np.sort(first)


def _interleaved(rank: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Order taking every group's best, then every group's second, ... (``rank`` = place
    within its group; ties by score), so one anchor cannot fill the list alone."""
    return np.lexsort((-score, rank))


class LocalRetrieval:
    """:class:`~vidrec.pipeline.clients.RetrievalClient` answered from memory."""

    def __init__(self, state: ServingState, cfg: ServingConfig = DEFAULT_SERVING) -> None:
        self.state = state
        self.cfg = cfg
        cat = state.catalogue
        self._emb_order = np.argsort(state.embedding_ids)
        self._emb_sorted = state.embedding_ids[self._emb_order]
        self._popular = np.lexsort((cat.video_id, -cat.popularity))  # catalogue rows
        self._fresh = np.lexsort((cat.video_id, -cat.upload_ts))  # newest first
        self._fresh_ts = cat.upload_ts[self._fresh]
        self._by_creator = np.lexsort((-cat.popularity, cat.creator_id))
        self._creator_sorted = cat.creator_id[self._by_creator]
        self._by_category = np.lexsort((-cat.popularity, cat.category))
        self._category_sorted = cat.category[self._by_category]

    # --- records -------------------------------------------------------------------------

    def _records(
        self, ids: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None = None
    ) -> list[RetrievedVideo]:
        """Metadata from the catalogue for each id; ids unknown to it are dropped."""
        cat = self.state.catalogue
        rows, known = cat.rows(ids)
        rows = rows[known]
        anchor = (np.full(rows.size, -1) if anchors is None else anchors[known]).tolist()
        return [
            RetrievedVideo(v, s, c, g, u, a)
            for v, s, c, g, u, a in zip(
                ids[known].tolist(),
                scores[known].astype(np.float64).tolist(),
                cat.creator_id[rows].tolist(),
                cat.category[rows].tolist(),
                cat.upload_ts[rows].tolist(),
                anchor,
                strict=True,
            )
        ]

    def _catalogue_rows(self, rows: np.ndarray, scores: np.ndarray) -> list[RetrievedVideo]:
        return self._records(self.state.catalogue.video_id[rows], scores)

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

    def _two_tower(
        self, user_vector: np.ndarray, history: Sequence[int], k: int
    ) -> list[RetrievedVideo]:
        ids, scores = self.state.index.search(self.user_embedding(user_vector, history), k)
        valid = ids[0] >= 0
        return self._records(ids[0][valid], scores[0][valid])

    async def two_tower(
        self, user_vector: np.ndarray, history: Sequence[int], k: int
    ) -> list[RetrievedVideo]:
        return await asyncio.to_thread(self._two_tower, user_vector, history, k)

    def _related(self, video_ids: Sequence[int], k: int) -> list[RetrievedVideo]:
        anchors = np.asarray(list(dict.fromkeys(int(v) for v in video_ids)), dtype=np.int64)
        pos = np.clip(np.searchsorted(self._emb_sorted, anchors), 0, self._emb_sorted.size - 1)
        found = self._emb_sorted[pos] == anchors
        anchors = anchors[found]
        if anchors.size == 0 or k < 1:
            return []
        queries = self.state.item_embeddings[self._emb_order[pos[found]]]
        ids, scores = self.state.index.search(queries, k + 1)  # +1: the anchor finds itself
        anchor_of = np.broadcast_to(anchors[:, None], ids.shape)
        rank = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
        keep = (ids >= 0) & (ids != anchor_of) & ~np.isin(ids, anchors)
        ids, scores, anchor_of, rank = ids[keep], scores[keep], anchor_of[keep], rank[keep]
        order = _interleaved(rank, scores)
        ids, scores, anchor_of = ids[order], scores[order], anchor_of[order]
        first = _first_occurrences(ids)[:k]
        return self._records(ids[first], scores[first], anchor_of[first])

    async def related(self, video_ids: Sequence[int], k: int) -> list[RetrievedVideo]:
        return await asyncio.to_thread(self._related, video_ids, k)

    # --- rule sources ----------------------------------------------------------------------

    async def trending(self, region: str, k: int) -> list[RetrievedVideo]:
        """Top videos by decayed clicks in ``region`` over the last 24 h of the log."""
        ids, scores = self.state.trending.get(region, (np.zeros(0, np.int64), np.zeros(0)))
        return self._records(ids[:k], scores[:k])

    async def popular(self, k: int) -> list[RetrievedVideo]:
        rows = self._popular[:k]
        return self._catalogue_rows(rows, self.state.catalogue.popularity[rows])

    async def fresh(self, k: int, now_ms: int) -> list[RetrievedVideo]:
        """Newest uploads first within ``fresh_max_age_h``; the newest overall if none are."""
        # _fresh_ts is descending: uploads at or before now start at `lo`.
        lo = int(np.searchsorted(-self._fresh_ts, -now_ms, side="left"))
        oldest = now_ms - int(self.cfg.fresh_max_age_h * HOUR_MS)
        hi = int(np.searchsorted(-self._fresh_ts, -oldest, side="right"))
        rows = self._fresh[lo : hi if hi > lo else lo + k][:k]
        age_h = (now_ms - self.state.catalogue.upload_ts[rows]) / HOUR_MS
        return self._catalogue_rows(rows, 0.5 ** (age_h / self.cfg.freshness_half_life_h))

    async def same_creator(self, video_ids: Sequence[int], k: int) -> list[RetrievedVideo]:
        """Other videos by the anchors' creators, most popular first, creators interleaved."""
        cat = self.state.catalogue
        anchors = np.asarray(list(dict.fromkeys(int(v) for v in video_ids)), dtype=np.int64)
        rows, known = cat.rows(anchors)
        anchors, creators = anchors[known], cat.creator_id[rows[known]]
        _, first = np.unique(creators, return_index=True)
        anchors, creators = anchors[np.sort(first)], creators[np.sort(first)]
        lo = np.searchsorted(self._creator_sorted, creators, side="left")
        hi = np.minimum(np.searchsorted(self._creator_sorted, creators, side="right"), lo + k + 1)
        counts = hi - lo
        if counts.sum() == 0:
            return []
        group = np.repeat(np.arange(creators.size), counts)
        rank = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        picked = self._by_creator[lo[group] + rank]
        keep = ~np.isin(cat.video_id[picked], anchors)
        picked, group, rank = picked[keep], group[keep], rank[keep]
        order = _interleaved(rank, cat.popularity[picked])[:k]
        return self._records(
            cat.video_id[picked[order]], cat.popularity[picked[order]], anchors[group[order]]
        )

    async def by_category(self, category: int, k: int) -> list[RetrievedVideo]:
        lo = int(np.searchsorted(self._category_sorted, category, side="left"))
        hi = int(np.searchsorted(self._category_sorted, category, side="right"))
        rows = self._by_category[lo : min(hi, lo + k)]
        return self._catalogue_rows(rows, self.state.catalogue.popularity[rows])
