"""A scale artefact dir: the demo's trained models serving a synthetic N-video catalogue.

`vidrec bench serving` needs a catalogue 100x KuaiRec's. The demo's user tower, ranker and
event log are reused as is; the ANN index, its item-item neighbour lists and the item
embeddings are replaced by a :func:`~vidrec.data.scale_catalog` of N videos (ids 0..N-1, so
KuaiRec's 0..10727 stay valid for the demo's users, sessions and trending). The dir is accepted
by ``ServingState.load`` and ``Stack``; it is built once (the HNSW build and the lists' batch
search are the slow parts, timed into ``scale_meta.json``) and reused when complete.

Two things are per stack, since the stack's ``prepare`` step rewrites ``serving/`` and its
Redis starts empty: :func:`scale_serving_table` (catalogue rows for all N videos) and
:func:`write_scale_vectors` (a video feature vector for each of them in the online store).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console

from vidrec.config import load_config
from vidrec.contracts.artefacts import SERVING_DIR, VIDEOS_FILE
from vidrec.data import scale_catalog
from vidrec.data.scale import ScaleCatalog
from vidrec.features import VIDEO_SPEC, materialize, unpack_many
from vidrec.features.context import DAY_MS
from vidrec.features.stores import VIDEO_ENTITY, OnlineStore
from vidrec.retrieval import IndexParams, build_index, build_neighbour_lists, faiss_threads
from vidrec.retrieval.index import INDEX_FILE, PARAMS_FILE
from vidrec.schema import N_CATEGORIES

CATALOG_DIR = "catalog"  # the ScaleCatalog itself (metadata + embeddings)
COMPLETE_MARKER = ".complete"
SCALE_META = "scale_meta.json"  # videos, index/lists build seconds and bytes
COPIED = ("manifest.json", "models", "model_repository", "data/events.parquet")
READ_CHUNK = 5_000  # ids per bulk read when copying the demo's vectors out of the store
WRITE_BATCH = 2_000  # rows per store write while materialising


def write_scale_artefacts(
    demo: Path,
    dest: Path,
    n_videos: int,
    console: Console | None = None,
    neighbours_k: int | None = None,
) -> Path:
    """Build ``dest`` from ``demo`` for ``n_videos`` synthetic videos, unless already complete.

    ``neighbours_k`` (default ``serving.neighbours_k``) neighbours are listed per video.
    """
    console = console or Console()
    k = min(neighbours_k or load_config().serving.neighbours_k, n_videos - 1)
    if (dest / COMPLETE_MARKER).is_file() and (dest / SCALE_META).is_file():
        console.print(f"[dim]reusing scale artefacts {dest}[/]")
        return dest  # (a dir from before scale_meta.json also lacks the neighbour lists)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for rel in COPIED:
        src, dst = demo / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    dim = int(np.load(demo / "models" / "item_embeddings.npy", mmap_mode="r").shape[1])
    console.print(f"generating a {n_videos:,}-video catalogue (dim {dim}) …")
    catalog = scale_catalog(n_videos, dim=dim, progress=True)
    catalog.save(dest / CATALOG_DIR)
    np.save(dest / "models" / "item_embeddings.npy", catalog.embeddings)
    np.save(dest / "models" / "video_ids.npy", catalog.video_ids)
    params_file = demo / "index" / PARAMS_FILE
    params = IndexParams.from_json(params_file.read_text(), str(params_file))
    console.print(f"building the {params.kind} index (a few minutes at 10^6) …")
    start = time.perf_counter()
    with faiss_threads():  # all cores, as an offline build has them
        index = build_index(catalog.embeddings, catalog.video_ids, params, progress=True)
    index_s = time.perf_counter() - start
    index.save(dest / "index")
    console.print(f"listing {k} item-item neighbours per video (one batch search per video) …")
    start = time.perf_counter()
    lists = build_neighbour_lists(index, catalog.embeddings, catalog.video_ids, k, progress=True)
    lists_s = time.perf_counter() - start
    meta = {
        "videos": n_videos,
        "index_kind": params.kind,
        "index_build_s": round(index_s, 2),
        "index_bytes": (dest / "index" / INDEX_FILE).stat().st_size,
        "neighbours_k": k,
        "neighbours_build_s": round(lists_s, 2),
        "neighbours_bytes": lists.save(dest / "index"),
    }
    (dest / SCALE_META).write_text(json.dumps(meta, indent=2) + "\n")
    (dest / COMPLETE_MARKER).touch()
    return dest


def load_scale_catalog(dest: Path) -> ScaleCatalog:
    return ScaleCatalog.load(dest / CATALOG_DIR)


def scale_serving_table(base: pl.DataFrame, catalog: ScaleCatalog) -> pl.DataFrame:
    """``base`` (the demo's serving videos table) plus a row for every other catalogue video.

    Synthetic creators are shifted past the demo's, so no synthetic video joins a real
    creator; synthetic videos have no clicks in the log, hence popularity 0.
    """
    extra = catalog.videos().filter(~pl.col("video_id").is_in(base["video_id"].implode()))
    shift = int(base["creator_id"].to_numpy().max(initial=0)) + 1
    extra = extra.select(
        "video_id",
        (pl.col("creator_id") + shift).alias("creator_id"),
        "primary_category",
        "upload_ts",
        pl.lit(0.0).alias("popularity"),
    )
    return pl.concat([base, extra.cast(base.schema)]).sort("video_id")


def write_serving_table(root: Path, catalog: ScaleCatalog) -> pl.DataFrame:
    """Extend ``root/serving/videos.parquet`` (as ``prepare`` left it) to the whole catalogue."""
    path = root / SERVING_DIR / VIDEOS_FILE
    table = scale_serving_table(pl.read_parquet(path), catalog)
    table.write_parquet(path)
    return table


def synthetic_vectors(
    base: np.ndarray, table: pl.DataFrame, rng: np.random.Generator
) -> np.ndarray:
    """One vector per ``table`` row: a sampled real vector with the video's own identity.

    Behaviour fields (CTR, watch ratio, views) come from a random real video; upload time,
    creator and category are the synthetic video's, as the ranker's cross features use them.
    """
    out = base[rng.integers(0, base.shape[0], table.height)].copy()
    upload = table["upload_ts"].to_numpy().astype(np.int64)
    out[:, VIDEO_SPEC.slice("upload_day")] = (upload // DAY_MS)[:, None]
    out[:, VIDEO_SPEC.slice("upload_sec_of_day")] = ((upload % DAY_MS) // 1000)[:, None]
    out[:, VIDEO_SPEC.slice("creator_id")] = table["creator_id"].to_numpy()[:, None]
    categories = np.zeros((table.height, N_CATEGORIES), np.float32)
    category = table["primary_category"].fill_null(0).to_numpy().astype(np.int64)
    categories[np.arange(table.height), np.clip(category, 0, N_CATEGORIES - 1)] = 1.0
    out[:, VIDEO_SPEC.slice("categories")] = categories
    return out


def write_scale_vectors(
    store: OnlineStore, table: pl.DataFrame, at_ms: int, seed: int = 0, progress: bool = True
) -> int:
    """Give every video of ``table`` a vector in ``store``; the real ones (already there, from
    ``prepare``) are kept and serve as the pool the synthetic ones are sampled from."""
    ids = table["video_id"].to_numpy()
    present: list[np.ndarray] = []
    real: list[np.ndarray] = []
    for lo in range(0, ids.size, READ_CHUNK):
        chunk = ids[lo : lo + READ_CHUNK]
        values, _, found = unpack_many(VIDEO_SPEC, store.get_many(VIDEO_ENTITY, chunk.tolist()))
        present.append(found)
        real.append(values[found])
    have = np.concatenate(present)
    base = np.concatenate(real)
    if base.shape[0] == 0:
        raise RuntimeError("write_scale_vectors: no real video vectors in the store to sample")
    missing = table.filter(pl.Series(~have))
    vectors = synthetic_vectors(base, missing, np.random.default_rng(seed))
    frame = pl.DataFrame(
        {
            "video_id": missing["video_id"],
            "vector": pl.Series(vectors, dtype=pl.Array(pl.Float32, VIDEO_SPEC.dim)),
        }
    )
    return materialize(frame, VIDEO_SPEC, store, VIDEO_ENTITY, at_ms, WRITE_BATCH, progress)
