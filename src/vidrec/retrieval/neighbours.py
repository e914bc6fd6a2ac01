"""Item-item neighbour lists, precomputed offline with the index: a gather instead of a search.

The home feed's item-item source asks, per request, for the nearest videos of the user's last
few watches. Those answers depend only on the catalogue, so they are computed once per index
by a batch search over it (every item embedding as a query, the item itself dropped), stored
next to the index, and served as a row lookup: 0.015 ms instead of 2.9 ms for five HNSW
searches at 1M videos.

Rows are sorted by owner video id. A loaded table is never written to (it may be memory
mapped and shared between processes); videos added while serving go into a small in-memory
*patch* table that shadows the base rows, and every change returns a new
:class:`NeighbourLists`, so a reader holding one sees a complete, consistent set of lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from vidrec.contracts.positions import Positions
from vidrec.retrieval.index import AnnIndex, faiss_threads

OWNERS_FILE = "neighbour_owners.npy"
IDS_FILE = "neighbour_ids.npy"
SCORES_FILE = "neighbour_scores.npy"
NEIGHBOUR_FILES = (OWNERS_FILE, IDS_FILE, SCORES_FILE)
PAD_SCORE = np.float32(-np.inf)  # score of a -1 slot: below any real score
BUILD_BATCH = 8192  # queries per FAISS call: large enough to keep every core busy


@dataclass(frozen=True)
class _Table:
    owners: np.ndarray  # int64[R], strictly ascending
    ids: np.ndarray  # int64[R, K], best first, -1 padded
    scores: np.ndarray  # float32[R, K], PAD_SCORE where ids is -1

    @classmethod
    def empty(cls, k: int) -> _Table:
        return cls(np.zeros(0, np.int64), np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))

    def __post_init__(self) -> None:
        _ = self.positions  # built with the table (at load, or off the request path)

    def find(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, found)`` for each anchor."""
        return self.positions.find(anchors)

    @cached_property
    def positions(self) -> Positions:
        return Positions(np.asarray(self.owners))


def _check(owners: np.ndarray, ids: np.ndarray, scores: np.ndarray, source: str) -> None:
    if owners.ndim != 1 or owners.dtype != np.int64:
        raise ValueError(f"{source}: owners must be int64[M], got {owners.dtype}{owners.shape}")
    if ids.ndim != 2 or ids.dtype != np.int64 or ids.shape[0] != owners.size:
        raise ValueError(f"{source}: ids must be int64[{owners.size}, K], got {ids.shape}")
    if scores.shape != ids.shape or scores.dtype != np.float32:
        raise ValueError(f"{source}: scores must be float32{list(ids.shape)}, got {scores.shape}")
    if owners.size > 1 and not bool(np.all(owners[1:] > owners[:-1])):
        raise ValueError(f"{source}: owners must be strictly ascending")


def neighbours_from_search(
    owners: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``k`` from a search of ``k + 1`` per owner: the owner dropped wherever it
    appears (or the last hit if it does not), the rest shifted left, -1 / PAD_SCORE padded."""
    keep = (ids >= 0) & (ids != owners[:, None])
    col = np.cumsum(keep, axis=1) - 1
    keep &= col < k
    rows = np.nonzero(keep)[0]
    out_ids = np.full((owners.size, k), -1, np.int64)
    out_scores = np.full((owners.size, k), PAD_SCORE, np.float32)
    out_ids[rows, col[keep]] = ids[keep]
    out_scores[rows, col[keep]] = scores[keep]
    return out_ids, out_scores


@dataclass(frozen=True)
class NeighbourLists:
    """Top-``k`` neighbours (video ids, inner-product scores) of every indexed video."""

    base: _Table
    patch: _Table  # rows added or changed while serving; shadows ``base``

    @property
    def k(self) -> int:
        return int(self.base.ids.shape[1])

    def __len__(self) -> int:
        return int(self.base.owners.size + (~self.base.find(self.patch.owners)[1]).sum())

    @classmethod
    def from_arrays(cls, owners: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> NeighbourLists:
        """Lists for ``owners`` (any order) from aligned rows."""
        order = np.argsort(owners, kind="stable")
        owners, ids, scores = owners[order], ids[order], scores[order]
        _check(owners, ids, scores, "NeighbourLists")
        return cls(_Table(owners, ids, scores), _Table.empty(ids.shape[1]))

    # --- reads ---------------------------------------------------------------------------

    def _rows(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, scores, found)`` rows per anchor (patch first); -1 rows where not found."""
        b_row, in_base = self.base.find(anchors)
        if self.patch.owners.size == 0 and in_base.all():  # the request path: one fancy index
            return self.base.ids[b_row], self.base.scores[b_row], in_base
        p_row, in_patch = self.patch.find(anchors)
        in_base &= ~in_patch
        ids = np.full((anchors.size, self.k), -1, np.int64)
        scores = np.full((anchors.size, self.k), PAD_SCORE, np.float32)
        for table, row, found in ((self.patch, p_row, in_patch), (self.base, b_row, in_base)):
            ids[found] = table.ids[row[found]]
            scores[found] = table.scores[row[found]]
        return ids, scores, in_patch | in_base

    def has(self, anchors: np.ndarray) -> np.ndarray:
        """bool[A]: which anchors have a list."""
        a = np.asarray(anchors, dtype=np.int64)
        return self.patch.find(a)[1] | self.base.find(a)[1]

    def gather(
        self, anchors: np.ndarray, k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, scores, anchor_of, rank)``, each ``[A, k]``: the first ``k`` neighbours of
        each anchor, in the shape a search of ``k + 1`` gives once the anchor is dropped.

        ``rank`` starts at 1 (the anchor itself is rank 0 in that search), so lists and
        searches interleave alike. Anchors without a list get -1 rows; see :meth:`has`.
        """
        k = self.k if k is None else k
        if not 1 <= k <= self.k:
            raise ValueError(f"gather: k must be in 1..{self.k}, got {k}")
        a = np.asarray(anchors, dtype=np.int64)
        ids, scores, _ = self._rows(a)
        ids, scores = ids[:, :k], scores[:, :k]
        anchor_of = np.broadcast_to(a[:, None], ids.shape)
        rank = np.broadcast_to(np.arange(1, k + 1), ids.shape)
        return ids, scores, anchor_of, rank

    # --- live updates --------------------------------------------------------------------

    def with_rows(self, owners: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> NeighbourLists:
        """A new set with these rows replacing (or adding) the owners' lists."""
        owners = np.asarray(owners, dtype=np.int64)
        last = owners.size - 1 - np.unique(owners[::-1], return_index=True)[1]  # last write wins
        owners, ids, scores = owners[last], ids[last], scores[last]
        kept = ~np.isin(self.patch.owners, owners)
        merged = NeighbourLists.from_arrays(
            np.concatenate([self.patch.owners[kept], owners]),
            np.concatenate([self.patch.ids[kept], ids]),
            np.concatenate([self.patch.scores[kept], scores.astype(np.float32)]),
        )
        return NeighbourLists(self.base, merged.base)

    def with_new_videos(
        self, new_ids: np.ndarray, found_ids: np.ndarray, found_scores: np.ndarray,
        symmetric: bool = True,
    ) -> NeighbourLists:  # fmt: skip
        """Lists for new videos from one search of ``k + 1`` each over an index that already
        holds them; with ``symmetric``, each new video also enters the list of every video in
        its own top ``k`` whose list it beats (inner product is symmetric: it scores there
        what that video scores here), so it can be recommended "because you watched" them.
        Videos outside its own top ``k`` that would rank it are not looked for."""
        new_ids = np.asarray(new_ids, dtype=np.int64)
        own_ids, own_scores = neighbours_from_search(new_ids, found_ids, found_scores, self.k)
        if not symmetric:
            return self.with_rows(new_ids, own_ids, own_scores)
        target, cand = own_ids.ravel(), np.repeat(new_ids, self.k)
        score = own_scores.ravel()
        valid = (target >= 0) & ~np.isin(target, new_ids) & self.has(target)
        target, cand, score = target[valid], cand[valid], score[valid]
        targets, group = np.unique(target, return_inverse=True)
        cur_ids, cur_scores, _ = self._rows(targets)
        beats = score > cur_scores[group, -1]  # only entries that make a top k
        beats &= ~(cur_ids[group] == cand[:, None]).any(axis=1)  # already listed: keep it once
        group, cand, score = group[beats], cand[beats], score[beats]
        touched = np.unique(group)
        if touched.size == 0:
            return self.with_rows(new_ids, own_ids, own_scores)
        # One extra column per insertion into a row; merge by score, keep the top k.
        order = np.lexsort((-score, group))
        group, cand, score = group[order], cand[order], score[order]
        row_of = np.searchsorted(touched, group)
        slot = np.arange(group.size) - np.searchsorted(group, touched)[row_of]  # place in its row
        width = int(slot.max()) + 1
        extra_ids = np.full((touched.size, width), -1, np.int64)
        extra_scores = np.full((touched.size, width), PAD_SCORE, np.float32)
        extra_ids[row_of, slot], extra_scores[row_of, slot] = cand, score
        all_ids = np.concatenate([cur_ids[touched], extra_ids], axis=1)
        all_scores = np.concatenate([cur_scores[touched], extra_scores], axis=1)
        best = np.argsort(-all_scores, axis=1, kind="stable")[:, : self.k]
        return self.with_rows(
            np.concatenate([new_ids, targets[touched]]),
            np.concatenate([own_ids, np.take_along_axis(all_ids, best, axis=1)]),
            np.concatenate([own_scores, np.take_along_axis(all_scores, best, axis=1)]),
        )

    # --- persistence ---------------------------------------------------------------------

    def save(self, directory: str | Path) -> int:
        """Write the three ``.npy`` files into ``directory`` (the patch folded in); returns
        their size in bytes."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        table = self.base
        if self.patch.owners.size:
            every = np.union1d(self.base.owners, self.patch.owners)
            ids, scores, _ = self._rows(every)
            table = _Table(every, ids, scores)
        arrays = (table.owners, table.ids, table.scores)
        for name, array in zip(NEIGHBOUR_FILES, arrays, strict=True):
            np.save(out / name, array)
        return sum((out / name).stat().st_size for name in NEIGHBOUR_FILES)

    @staticmethod
    def present(directory: str | Path) -> bool:
        return all((Path(directory) / name).is_file() for name in NEIGHBOUR_FILES)

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True) -> NeighbourLists:
        """Read lists written by :meth:`save`. Memory-mapped by default: a serving process
        starts without reading ~1.2 GB at 1M videos, and processes on one host share pages."""
        src = Path(directory)
        for name in NEIGHBOUR_FILES:
            if not (src / name).is_file():
                raise FileNotFoundError(f"{src / name}: missing (written by NeighbourLists.save)")
        mode: Literal["r"] | None = "r" if mmap else None
        owners, ids, scores = (
            np.load(src / name, mmap_mode=mode, allow_pickle=False) for name in NEIGHBOUR_FILES
        )
        owners = np.asarray(owners)  # small; searched on every lookup
        _check(owners, ids, scores, str(src))
        return cls(_Table(owners, ids, scores), _Table.empty(ids.shape[1]))


def build_neighbour_lists(
    index: AnnIndex,
    embeddings: np.ndarray,
    ids: np.ndarray,
    k: int,
    *,
    progress: bool = False,
    threads: int | None = None,
) -> NeighbourLists:
    """Lists for every video ``ids`` (rows of ``embeddings``) by searching ``index`` for
    ``k + 1`` neighbours of each (the video itself is dropped), in batches, on all cores."""
    if k < 1:
        raise ValueError(f"build_neighbour_lists: k must be >= 1, got {k}")
    ids = np.asarray(ids, dtype=np.int64)
    if embeddings.shape[0] != ids.size:
        raise ValueError(f"build_neighbour_lists: {ids.size} ids for {embeddings.shape[0]} rows")
    order = np.argsort(ids, kind="stable")
    owners = ids[order]
    out_ids = np.empty((ids.size, k), np.int64)
    out_scores = np.empty((ids.size, k), np.float32)
    with (
        faiss_threads(threads),
        tqdm(
            total=ids.size, disable=not progress, desc=f"item-item lists k={k}", unit="video"
        ) as bar,
    ):
        for lo in range(0, ids.size, BUILD_BATCH):
            rows = order[lo : lo + BUILD_BATCH]
            found, scores = index.search(np.asarray(embeddings[rows], np.float32), k + 1)
            hi = lo + rows.size
            out_ids[lo:hi], out_scores[lo:hi] = neighbours_from_search(
                owners[lo:hi], found, scores, k
            )
            bar.update(rows.size)
    return NeighbourLists(_Table(owners, out_ids, out_scores), _Table.empty(k))
