"""Everything the in-process retrieval needs, loaded from one artefact directory.

Serving only reads artefacts: the rule tables (catalogue metadata with popularity, trending per
region, the log clock) are written by the offline build (:mod:`vidrec.offline.serving_prep`)
into ``<artefacts>/serving/``; a missing one is an error naming the command that builds it.
"Now" for serving is the end of the artefact's log (KuaiRec time is 2020), unless overridden.

:class:`LiveIndex` lets many searches or one ``add`` touch the FAISS index at a time (FAISS
search is thread-safe, add concurrent with search is not), so uploads join a running process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl

from vidrec.contracts.artefacts import (
    CLOCK_FILE,
    MANIFEST_FILE,
    TRENDING_FILE,
    VIDEOS_FILE,
    require,
    serving_tables,
)
from vidrec.contracts.catalogue import Catalogue, first_of_each
from vidrec.contracts.manifest import Manifest, read_manifest
from vidrec.features.spec import user_spec
from vidrec.ranking.sessions import cpu_session
from vidrec.ranking.signature import HISTORY_INPUT
from vidrec.retrieval import AnnIndex, NeighbourLists

HOUR_MS = 3_600_000


def trending_by_region(trending: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Region -> (video ids, scores), best first, from the ``serving/`` trending table."""
    return {
        str(key[0]): (part["video_id"].to_numpy(), part["score"].to_numpy())
        for key, part in trending.group_by("region", maintain_order=True)
    }


def static_dim_of(manifest: Manifest) -> int:
    """Width of the static user block, from the manifest's user spec dim."""
    return int(manifest.feature_specs["user"]["dim"]) - (user_spec(1).dim - 1)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds off new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class LiveIndex:
    """An :class:`AnnIndex` that grows while it serves: ``search`` under a read lock, ``add``
    (FAISS ``add`` + the row → id map) under the write lock, so a search never sees a row
    without its id. Ids already in the index are skipped (FAISS HNSW cannot replace rows)."""

    def __init__(self, index: AnnIndex) -> None:
        self.ann = index
        self._lock = ReadWriteLock()

    def __len__(self) -> int:
        return len(self.ann)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock.read():
            return self.ann.search(queries, k)

    def add(self, embeddings: np.ndarray, ids: np.ndarray) -> int:
        """Add the rows whose ids are new; returns how many were added."""
        ids = np.asarray(ids, dtype=np.int64)
        new = ~np.isin(ids, self.ann.video_ids) & first_of_each(ids)
        if not new.any():
            return 0
        vectors = np.asarray(embeddings, dtype=np.float32)[new]
        vectors = np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        with self._lock.write():
            self.ann.index.add(vectors)
            self.ann.video_ids = np.concatenate([self.ann.video_ids, ids[new]])
        return int(new.sum())


@dataclass(frozen=True)
class ServingState:
    """Loaded artefacts: catalogue, ANN index (+ item-item lists when the artefact has them),
    item embeddings, user tower, rule tables."""

    root: Path
    manifest: Manifest
    catalogue: Catalogue
    trending: dict[str, tuple[np.ndarray, np.ndarray]]  # region -> (video ids, scores), best first
    index: AnnIndex
    item_embeddings: np.ndarray  # float32[M, E], row i is embedding_ids[i]
    embedding_ids: np.ndarray  # int64[M]
    user_tower: ort.InferenceSession
    log_end_ms: int
    now_override_ms: int | None = None
    neighbours: NeighbourLists | None = None  # None: item-item searches the index

    @property
    def static_dim(self) -> int:
        return static_dim_of(self.manifest)

    @property
    def history_len(self) -> int:
        """H of the user tower's ``history`` input (fixed at export)."""
        shapes = {i.name: i.shape for i in self.user_tower.get_inputs()}
        return int(shapes[HISTORY_INPUT][1])

    def clock_ms(self) -> int:
        """Serving "now": the override, else the end of the artefact's event log."""
        return self.now_override_ms if self.now_override_ms is not None else self.log_end_ms

    @classmethod
    def load(cls, artefacts_dir: str | Path, now_ms: int | None = None) -> ServingState:
        """Load ``artefacts_dir``; a missing artefact raises
        :class:`~vidrec.contracts.artefacts.MissingArtefact` naming the command that builds it."""
        root = Path(artefacts_dir)
        manifest = read_manifest(require(root, MANIFEST_FILE, "vidrec pipeline run --out {root}"))
        cache = serving_tables(root)
        models = root / manifest.artefacts.get("models", "models")
        tower = root / manifest.artefacts.get("user_tower", "models/user_tower.onnx")
        index_dir = manifest.artefacts.get("index", "index")
        lists_dir = root / manifest.artefacts.get("neighbours", index_dir)  # next to the index
        neighbours = NeighbourLists.load(lists_dir) if NeighbourLists.present(lists_dir) else None
        return cls(
            root=root,
            manifest=manifest,
            catalogue=Catalogue.from_table(pl.read_parquet(cache / VIDEOS_FILE)),
            trending=trending_by_region(pl.read_parquet(cache / TRENDING_FILE)),
            index=AnnIndex.load(root / index_dir),
            item_embeddings=np.load(models / "item_embeddings.npy").astype(np.float32),
            embedding_ids=np.load(models / "video_ids.npy").astype(np.int64),
            user_tower=cpu_session(tower),
            log_end_ms=int(json.loads((cache / CLOCK_FILE).read_text())["log_end_ms"]),
            now_override_ms=now_ms,
            neighbours=neighbours,
        )
