"""Synthetic catalogues of 10^6-10^7 videos for index, store and latency tests at scale.

KuaiRec has 10,728 videos; production catalogues are 1,000x larger. These catalogues keep the
shape of the real one (KuaiRec's 31 categories with a Zipf share, power-law videos per
creator, log-normal durations fitted to KuaiRec) and add float32 L2-normalised embeddings
with cluster structure - category centroid, then one of ``SUBTOPICS_PER_CATEGORY``
sub-topics, then noise - so approximate nearest-neighbour recall is meaningful (uniform
random vectors would make every ANN index look equally bad).

Rows are generated ``chunk`` at a time, each chunk from its own seeded stream, so peak
memory is the output (10^7 x 32 float32 = 1.28 GB) plus one chunk of temporaries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.progress import Progress

from vidrec.data.kuairec import KUAIREC_LOG_START_MS
from vidrec.schema import N_CATEGORIES

DURATION_LOG_MU = 9.154
DURATION_LOG_SIGMA = 0.467
"""``kuairec.fit_duration_lognormal`` of big_matrix_head1000's video_duration (tested)."""
CATEGORY_ZIPF_EXPONENT = 0.8
SUBTOPICS_PER_CATEGORY = 32
SUBTOPIC_SPREAD = 0.7  # sub-topic offset from its category centroid (unit vectors)
NOISE_SPREAD = 0.5  # item offset from its sub-topic centroid
UPLOAD_SPAN_MS = 365 * 86_400_000
CREATOR_SKEW = 3.0  # creator = floor(n_creators * U^CREATOR_SKEW): power-law videos/creator
VIDEOS_PER_CREATOR = 8

VIDEOS_FILE = "videos.parquet"
EMBEDDINGS_FILE = "embeddings.npy"
META_FILE = "meta.json"


@dataclass(frozen=True)
class ScaleCatalog:
    video_ids: np.ndarray  # int64[n], 0..n-1
    creator_ids: np.ndarray  # int64[n]
    primary_category: np.ndarray  # int64[n]
    duration_ms: np.ndarray  # int64[n]
    upload_ts: np.ndarray  # int64[n], epoch ms
    embeddings: np.ndarray  # float32[n, dim], unit norm

    def videos(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "video_id": self.video_ids,
                "creator_id": self.creator_ids,
                "primary_category": self.primary_category,
                "duration_ms": self.duration_ms,
                "upload_ts": self.upload_ts,
            }
        )

    def save(self, directory: Path) -> Path:
        """Write ``videos.parquet`` + ``embeddings.npy`` (+ ``meta.json``) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.videos().write_parquet(directory / VIDEOS_FILE)
        np.save(directory / EMBEDDINGS_FILE, self.embeddings)
        meta = {"n_videos": len(self.video_ids), "dim": int(self.embeddings.shape[1])}
        (directory / META_FILE).write_text(json.dumps(meta))
        return directory

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> ScaleCatalog:
        """Read a saved catalogue; embeddings are memory-mapped unless ``mmap=False``."""
        directory = Path(directory)
        for name in (VIDEOS_FILE, EMBEDDINGS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name}: missing; run scale_catalog().save")
        videos = pl.read_parquet(directory / VIDEOS_FILE)
        embeddings = np.load(directory / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None)
        return cls(
            video_ids=videos["video_id"].to_numpy(),
            creator_ids=videos["creator_id"].to_numpy(),
            primary_category=videos["primary_category"].to_numpy(),
            duration_ms=videos["duration_ms"].to_numpy(),
            upload_ts=videos["upload_ts"].to_numpy(),
            embeddings=embeddings,
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _centroids(dim: int, seed: int) -> np.ndarray:
    """``float32[N_CATEGORIES, SUBTOPICS_PER_CATEGORY, dim]`` sub-topic centroids."""
    rng = np.random.default_rng([seed, 0])
    category = _unit(rng.normal(size=(N_CATEGORIES, 1, dim)))
    offset = _unit(rng.normal(size=(N_CATEGORIES, SUBTOPICS_PER_CATEGORY, dim)))
    return _unit(category + SUBTOPIC_SPREAD * offset).astype(np.float32)


def scale_catalog(
    n_videos: int,
    dim: int = 32,
    seed: int = 0,
    chunk: int = 1 << 18,
    progress: bool = False,
) -> ScaleCatalog:
    """A seeded synthetic catalogue of ``n_videos`` (see module docstring)."""
    if n_videos < 1 or dim < 2 or chunk < 1:
        raise ValueError(
            f"scale_catalog: need n_videos >= 1, dim >= 2, chunk >= 1; got "
            f"{n_videos}, {dim}, {chunk}"
        )
    centroids = _centroids(dim, seed)
    category_p = np.arange(1, N_CATEGORIES + 1, dtype=np.float64) ** -CATEGORY_ZIPF_EXPONENT
    category_p /= category_p.sum()
    n_creators = max(1, n_videos // VIDEOS_PER_CREATOR)
    category = np.empty(n_videos, np.int64)
    creator = np.empty(n_videos, np.int64)
    duration = np.empty(n_videos, np.int64)
    upload = np.empty(n_videos, np.int64)
    embeddings = np.empty((n_videos, dim), np.float32)
    starts = range(0, n_videos, chunk)
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"generating {n_videos:,} videos", total=len(starts))
        for block, lo in enumerate(starts):
            hi = min(lo + chunk, n_videos)
            rng = np.random.default_rng([seed, 1, block])
            n = hi - lo
            cat = rng.choice(N_CATEGORIES, size=n, p=category_p)
            sub = rng.integers(0, SUBTOPICS_PER_CATEGORY, n)
            noise = _unit(rng.standard_normal((n, dim), dtype=np.float32))
            embeddings[lo:hi] = _unit(centroids[cat, sub] + NOISE_SPREAD * noise)
            category[lo:hi] = cat
            creator[lo:hi] = (n_creators * rng.random(n) ** CREATOR_SKEW).astype(np.int64)
            duration[lo:hi] = np.clip(
                rng.lognormal(DURATION_LOG_MU, DURATION_LOG_SIGMA, n), 1_000, 600_000
            ).round()
            upload[lo:hi] = KUAIREC_LOG_START_MS - rng.integers(1, UPLOAD_SPAN_MS, n)
            bar.advance(task)
    return ScaleCatalog(
        video_ids=np.arange(n_videos, dtype=np.int64),
        creator_ids=creator,
        primary_category=category,
        duration_ms=duration,
        upload_ts=upload,
        embeddings=embeddings,
    )
