"""Everything the in-process retrieval needs, loaded from one artefact directory.

Rule tables (catalogue metadata with popularity, trending per region) are computed once from
the artefact's event log by :func:`prepare` and cached as ``<artefacts>/serving/*.parquet``,
so a serving process loads in well under two seconds instead of re-reading the catalogue and
the log. "Now" for serving is the end of that log (KuaiRec time is 2020), unless overridden.

Uploads join a running process (cold start) without a restart: :meth:`Catalogue.with_videos`
returns a new catalogue (readers keep the one they hold), and :class:`LiveIndex` lets many
searches or one ``add`` touch the FAISS index at a time (FAISS search is thread-safe, add
concurrent with search is not).
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

from vidrec.config import load_config
from vidrec.features.spec import user_spec
from vidrec.offline.manifest import Manifest, read_manifest
from vidrec.ranking.sessions import cpu_session
from vidrec.ranking.signature import HISTORY_INPUT
from vidrec.retrieval import AnnIndex, NeighbourLists
from vidrec.schema import EventType

SERVING_DIR = "serving"
VIDEOS_FILE = "videos.parquet"
TRENDING_FILE = "trending.parquet"
CLOCK_FILE = "clock.json"
HOUR_MS = 3_600_000
TRENDING_WINDOW_MS = 24 * HOUR_MS
TRENDING_HALF_LIFE_H = 6.0
POPULAR_HALF_LIFE_H = 72.0
TRENDING_TOP = 1000  # kept per region: more than any surface asks for


def static_dim_of(manifest: Manifest) -> int:
    """Width of the static user block, from the manifest's user spec dim."""
    return int(manifest.feature_specs["user"]["dim"]) - (user_spec(1).dim - 1)


def decayed_clicks(
    events: pl.DataFrame, now_ms: int, half_life_h: float, window_ms: int | None, by: list[str]
) -> pl.DataFrame:
    """``by`` + ``score``: clicks before ``now_ms`` weighted by ``0.5 ** (age / half_life)``."""
    clicks = events.filter((pl.col("type") == EventType.CLICK.value) & (pl.col("ts") < now_ms))
    if window_ms is not None:
        clicks = clicks.filter(pl.col("ts") >= now_ms - window_ms)
    weight = 0.5 ** ((now_ms - pl.col("ts")) / (half_life_h * HOUR_MS))
    return clicks.group_by(by).agg(weight.sum().alias("score"))


def rule_tables(
    videos: pl.DataFrame, events: pl.DataFrame, now_ms: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(videos, trending)``: catalogue metadata + global popularity; top videos per region."""
    popular = decayed_clicks(events, now_ms, POPULAR_HALF_LIFE_H, None, ["video_id"])
    table = (
        videos.select("video_id", "creator_id", "primary_category", "upload_ts")
        .join(popular, on="video_id", how="left")
        .with_columns(pl.col("score").fill_null(0.0).alias("popularity"))
        .drop("score")
        .sort("video_id")
    )
    trending = (
        decayed_clicks(
            events.filter(pl.col("region").is_not_null()),
            now_ms,
            TRENDING_HALF_LIFE_H,
            TRENDING_WINDOW_MS,
            ["region", "video_id"],
        )
        .sort(["region", "score", "video_id"], descending=[False, True, False])
        .group_by("region", maintain_order=True)
        .head(TRENDING_TOP)
    )
    return table, trending


def trending_by_region(trending: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Region -> (video ids, scores), best first, from :func:`rule_tables`' trending table."""
    return {
        str(key[0]): (part["video_id"].to_numpy(), part["score"].to_numpy())
        for key, part in trending.group_by("region", maintain_order=True)
    }


def log_clock_ms(events: pl.DataFrame) -> int:
    """Serving "now" for a log: just after its last event."""
    return int(events["ts"].max()) + 1  # type: ignore[arg-type]


def load_videos_and_events(root: Path, manifest: Manifest) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The catalogue as the artefact's event log saw it, and that log."""
    from vidrec.data import load_catalog
    from vidrec.offline.catalog import videos_as_of_log
    from vidrec.offline.events_io import read_events

    events_path = root / manifest.artefacts.get("events", "data/events.parquet")
    events = read_events(events_path)
    catalog = load_catalog(load_config().data.kuairec_dir, seed=manifest.seed)
    return videos_as_of_log(catalog.videos, events, str(events_path)), events


def prepare(root: str | Path, videos: pl.DataFrame, events: pl.DataFrame) -> Path:
    """Write the rule tables and the log clock into ``root/serving``; return that dir."""
    out = Path(root) / SERVING_DIR
    out.mkdir(parents=True, exist_ok=True)
    clock = log_clock_ms(events)
    table, trending = rule_tables(videos, events, clock)
    table.write_parquet(out / VIDEOS_FILE)
    trending.write_parquet(out / TRENDING_FILE)
    (out / CLOCK_FILE).write_text(json.dumps({"log_end_ms": clock}) + "\n")
    return out


@dataclass(frozen=True)
class Catalogue:
    """Video metadata as aligned numpy columns sorted by id, for vectorised lookups."""

    video_id: np.ndarray
    creator_id: np.ndarray
    category: np.ndarray
    upload_ts: np.ndarray
    popularity: np.ndarray

    @classmethod
    def from_table(cls, table: pl.DataFrame) -> Catalogue:
        t = table.sort("video_id")
        return cls(
            video_id=t["video_id"].to_numpy(),
            creator_id=t["creator_id"].to_numpy(),
            category=t["primary_category"].fill_null(-1).to_numpy(),
            upload_ts=t["upload_ts"].to_numpy(),
            popularity=t["popularity"].to_numpy().astype(np.float32),
        )

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, known)``: row of each id; ``known`` False for ids not in the catalogue."""
        pos = np.clip(np.searchsorted(self.video_id, ids), 0, max(self.video_id.size - 1, 0))
        return pos, self.video_id[pos] == ids if self.video_id.size else np.zeros(0, bool)

    def with_videos(
        self, video_id: np.ndarray, creator_id: np.ndarray, category: np.ndarray,
        upload_ts: np.ndarray,
    ) -> Catalogue:  # fmt: skip
        """A new catalogue with these videos added (popularity 0); ids already known are kept
        as they are, so a replayed upload changes nothing."""
        new = ~self.rows(video_id)[1] if self.video_id.size else np.ones(video_id.size, bool)
        new &= _first_of_each(video_id)
        order = np.argsort(np.concatenate([self.video_id, video_id[new]]), kind="stable")

        def merged(old: np.ndarray, add: np.ndarray) -> np.ndarray:
            return np.concatenate([old, np.asarray(add, dtype=old.dtype)[new]])[order]

        return Catalogue(
            video_id=merged(self.video_id, video_id),
            creator_id=merged(self.creator_id, creator_id),
            category=merged(self.category, category),
            upload_ts=merged(self.upload_ts, upload_ts),
            popularity=merged(self.popularity, np.zeros(video_id.size, np.float32)),
        )


def _first_of_each(ids: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each id."""
    mask = np.zeros(ids.size, dtype=bool)
    mask[np.unique(ids, return_index=True)[1]] = True
    return mask


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
        new = ~np.isin(ids, self.ann.video_ids) & _first_of_each(ids)
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
        """Load ``artefacts_dir``; builds the ``serving/`` rule tables first if absent."""
        root = Path(artefacts_dir)
        manifest = read_manifest(root / "manifest.json")
        cache = root / SERVING_DIR
        if not all((cache / f).is_file() for f in (VIDEOS_FILE, TRENDING_FILE, CLOCK_FILE)):
            prepare(root, *load_videos_and_events(root, manifest))
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
