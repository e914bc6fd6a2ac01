"""FAISS index over L2-normalised item embeddings, searched by inner product (= cosine).

The two-tower model scores a (user, video) pair by the dot product of unit vectors, so the
index normalises both sides and uses inner-product search. FAISS numbers rows 0..M-1; the
index keeps the video id of every row and returns video ids, never row numbers.

Which structure (see :func:`index_params_for`):

- ``hnsw`` (default): graph index, ~0.95+ recall@500 at sub-millisecond latency, but it
  stores full float vectors plus the graph (~``4*E + 8*M`` bytes per item), so it is used
  below ``HNSW_MAX_ITEMS`` (2M items, ~0.8 GB at E=32, M=32).
- ``ivfpq``: inverted lists over PQ codes (``pq_m`` bytes per item), trained on a sample;
  for catalogues of millions to billions where HNSW's memory and build time do not fit.
- ``flat``: exact search; the ground truth for :func:`recall_at_k`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from tqdm import tqdm

IndexKind = Literal["hnsw", "ivfpq", "flat"]
INDEX_KINDS: tuple[str, ...] = ("hnsw", "ivfpq", "flat")

HNSW_MAX_ITEMS = 2_000_000
"""Above this many items :func:`index_params_for` switches from HNSW to IVF-PQ."""

INDEX_FILE = "items.faiss"
IDS_FILE = "video_ids.npy"
PARAMS_FILE = "index_params.json"

_ADD_CHUNK = 50_000  # rows per add() call, so progress advances on large catalogues


def set_faiss_threads(n: int) -> None:
    """OpenMP threads for every FAISS call in this process (global to the process).

    Serving sets 1 (``ServingConfig.faiss_threads``): its searches are one or a few queries,
    where OpenMP's spinning workers burnt +43 % CPU on a 2-core server for no latency gain.
    """
    if n < 1:
        raise ValueError(f"set_faiss_threads: need n >= 1, got {n}")
    faiss.omp_set_num_threads(n)


@contextmanager
def faiss_threads(n: int | None = None) -> Iterator[None]:
    """``n`` FAISS threads (all cores if None) for the block, then the previous setting:
    offline batch builds use the whole machine without changing what serving set."""
    previous = faiss.omp_get_max_threads()
    set_faiss_threads(n or os.cpu_count() or 1)
    try:
        yield
    finally:
        set_faiss_threads(previous)


@dataclass(frozen=True)
class IndexParams:
    """How to build and search an index. Fields of the other kinds are ignored."""

    kind: IndexKind = "hnsw"
    # HNSW: graph degree, build-time and search-time beam widths.
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128  # raised to k at search time: HNSW cannot return more than ef
    # IVF-PQ: coarse lists, PQ sub-quantisers x bits, lists probed per query.
    nlist: int = 1024
    pq_m: int = 16
    pq_nbits: int = 8
    nprobe: int = 32
    train_sample: int = 200_000  # rows drawn (seeded) to train the coarse quantiser and PQ
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"IndexParams.kind: {self.kind!r} is not one of {INDEX_KINDS}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in ("kind", "seed") and (not isinstance(value, int) or value < 1):
                raise ValueError(f"IndexParams.{f.name}: expected a positive int, got {value!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> IndexParams:
        """Parse :meth:`to_json` output; errors name ``source`` and the offending field."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}")
        try:
            return cls(**raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc


def index_params_for(n_items: int, dim: int) -> IndexParams:
    """Default structure for a catalogue size: HNSW below 2M items, IVF-PQ above.

    IVF-PQ uses ~4·sqrt(N) lists (rounded to a power of two) and one PQ byte per two
    dimensions, which keeps list scans short and codes ~8x smaller than float32.
    """
    if n_items < 1 or dim < 1:
        raise ValueError(f"index_params_for: need n_items >= 1 and dim >= 1, got {n_items}, {dim}")
    if n_items < HNSW_MAX_ITEMS:
        return IndexParams(kind="hnsw")
    nlist = 2 ** round(math.log2(4 * math.sqrt(n_items)))
    pq_m = max(d for d in range(1, max(1, dim // 2) + 1) if dim % d == 0)
    return IndexParams(kind="ivfpq", nlist=nlist, pq_m=pq_m, nprobe=max(16, nlist // 64))


def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Validate a float32 matrix and return an L2-normalised contiguous copy."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float32:
        got = f"{x.dtype}{list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{what}: expected float32[N, E], got {got}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(f"{what}: row {int(zero[0])} is a zero vector (cannot be normalised)")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def _empty_index(params: IndexParams, dim: int) -> Any:
    if params.kind == "flat":
        return faiss.IndexFlatIP(dim)
    if params.kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = params.ef_construction
        hnsw.hnsw.efSearch = params.ef_search
        return hnsw
    if dim % params.pq_m:
        raise ValueError(f"IndexParams.pq_m: {params.pq_m} does not divide embedding dim {dim}")
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(
        quantizer, dim, params.nlist, params.pq_m, params.pq_nbits, faiss.METRIC_INNER_PRODUCT
    )
    index.nprobe = params.nprobe
    return index


@dataclass
class AnnIndex:
    """A FAISS index plus the video id of each of its rows."""

    index: Any  # faiss.Index
    video_ids: np.ndarray  # int64[M]; row r of the index is video video_ids[r]
    params: IndexParams

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def _search_params(self, k: int) -> Any:
        # Per-call parameters, not index attributes: concurrent searches stay independent.
        if self.params.kind == "hnsw":
            hnsw = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # stubs lag faiss
            hnsw.efSearch = max(self.params.ef_search, k)
            return hnsw
        if self.params.kind == "ivfpq":
            ivf = faiss.SearchParametersIVF()
            ivf.nprobe = self.params.nprobe
            return ivf
        return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` video ids (int64[Q, k]) and cosine scores (float32[Q, k]) per query.

        Slots beyond the number of items found hold id -1. Queries are normalised here.
        """
        if k < 1:
            raise ValueError(f"search: k must be >= 1, got {k}")
        q = _unit_rows(queries, "search queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"search queries: width {q.shape[1]} != index dim {self.dim}")
        params = self._search_params(k)
        if params is None:
            scores, rows = self.index.search(q, k)
        else:
            scores, rows = self.index.search(q, k, params=params)
        ids = np.where(rows >= 0, self.video_ids[np.maximum(rows, 0)], -1).astype(np.int64)
        return ids, scores.astype(np.float32, copy=False)

    def save(self, directory: str | Path) -> Path:
        """Write ``items.faiss``, ``video_ids.npy`` and ``index_params.json`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(out / INDEX_FILE))
        np.save(out / IDS_FILE, self.video_ids)
        (out / PARAMS_FILE).write_text(self.params.to_json())
        return out

    @classmethod
    def load(cls, directory: str | Path) -> AnnIndex:
        """Read an index written by :meth:`save`; errors name the file that is wrong."""
        src = Path(directory)
        for name in (INDEX_FILE, IDS_FILE, PARAMS_FILE):
            if not (src / name).is_file():
                raise FileNotFoundError(f"{src / name}: missing (expected from AnnIndex.save)")
        params = IndexParams.from_json((src / PARAMS_FILE).read_text(), str(src / PARAMS_FILE))
        video_ids = np.load(src / IDS_FILE, allow_pickle=False)
        if video_ids.ndim != 1 or video_ids.dtype != np.int64:
            raise ValueError(f"{src / IDS_FILE}: expected int64[M], got {video_ids.dtype}")
        index = faiss.read_index(str(src / INDEX_FILE))
        if index.ntotal != video_ids.shape[0]:
            raise ValueError(
                f"{src / INDEX_FILE}: {index.ntotal} rows but {src / IDS_FILE} has "
                f"{video_ids.shape[0]} ids"
            )
        return cls(index=index, video_ids=video_ids, params=params)


def _check_ids(ids: np.ndarray, n_rows: int) -> np.ndarray:
    if not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype != np.int64:
        raise ValueError("build_index ids: expected int64[M]")
    if ids.shape[0] != n_rows:
        raise ValueError(f"build_index ids: {ids.shape[0]} ids for {n_rows} embeddings")
    if np.unique(ids).shape[0] != n_rows:
        raise ValueError("build_index ids: video ids are not unique")
    return ids.copy()


def build_index(
    embeddings: np.ndarray,
    ids: np.ndarray,
    params: IndexParams | None = None,
    *,
    progress: bool = False,
) -> AnnIndex:
    """Build an index over ``embeddings`` (float32[M, E]) whose rows are videos ``ids``.

    ``params.kind`` picks the structure (default HNSW). IVF-PQ is trained on a seeded sample
    of ``params.train_sample`` rows before the catalogue is added.
    """
    params = params or IndexParams()
    vectors = _unit_rows(embeddings, "build_index embeddings")
    video_ids = _check_ids(ids, vectors.shape[0])
    index = _empty_index(params, vectors.shape[1])
    if params.kind == "ivfpq":
        if vectors.shape[0] < params.nlist:
            raise ValueError(
                f"IndexParams.nlist: {params.nlist} lists need at least that many items, "
                f"got {vectors.shape[0]}"
            )
        rng = np.random.default_rng(params.seed)
        n_train = min(vectors.shape[0], params.train_sample)
        index.train(vectors[rng.choice(vectors.shape[0], n_train, replace=False)])
    with tqdm(total=vectors.shape[0], disable=not progress, desc=f"index {params.kind}") as bar:
        for start in range(0, vectors.shape[0], _ADD_CHUNK):
            chunk = vectors[start : start + _ADD_CHUNK]
            index.add(chunk)
            bar.update(chunk.shape[0])
    return AnnIndex(index=index, video_ids=video_ids, params=params)


def make_index(embeddings: np.ndarray, ids: np.ndarray, *, progress: bool = False) -> AnnIndex:
    """Build with the structure :func:`index_params_for` picks for this catalogue size."""
    params = index_params_for(embeddings.shape[0], embeddings.shape[1])
    return build_index(embeddings, ids, params, progress=progress)


def exact_index(embeddings: np.ndarray, ids: np.ndarray) -> AnnIndex:
    """Brute-force inner-product index: the ground truth for recall measurements."""
    return build_index(embeddings, ids, IndexParams(kind="flat"))


def recall_at_k(index: AnnIndex, exact: AnnIndex, queries: np.ndarray, k: int = 500) -> float:
    """Fraction of the exact top-``k`` video ids that ``index`` also returns, over all queries."""
    approx_ids, _ = index.search(queries, k)
    true_ids, _ = exact.search(queries, k)
    found = total = 0
    for approx_row, true_row in zip(approx_ids, true_ids, strict=True):
        truth = true_row[true_row >= 0]
        found += int(np.isin(truth, approx_row).sum())
        total += truth.shape[0]
    if total == 0:
        raise ValueError("recall_at_k: the exact index returned no results")
    return found / total
