"""The hidden state of the simulated world: what users like and how good videos are.

Built once per simulation from the real catalogue and ``SimConfig``; the logging policy and
the outcome model both read it, downstream models must *learn* it from features and logs.

- **Category affinity** ``z[u, c]``: a fixed seeded projection of the user's real KuaiRec
  ``static`` features to category logits, plus per-user Gaussian noise
  (``affinity_noise``), standardised per user over the categories. Most of it is therefore
  predictable from user features, the rest only from the user's history.
- **Video affinity** ``z[u] · m[v]``: ``m[v]`` spreads the video evenly over its
  ``category_ids``.
- **Popularity** ``pop[v]``: Pareto(``popularity_alpha``) - a power law; **quality**
  ``q[v]`` is standardised ``log pop[v]`` (popular videos are popular because they are good).
- **Activity**: expected sessions per day = ``sessions_per_user_per_day`` x a factor for the
  real ``user_active_degree`` x a log-normal(0, 0.5) per-user factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from vidrec.schema import N_CATEGORIES

if TYPE_CHECKING:
    from vidrec.data.kuairec import Catalog
    from vidrec.data.simulator import SimConfig

ACTIVITY_FACTOR: dict[str, float] = {
    "full_active": 1.3,
    "high_active": 0.8,
    "middle_active": 0.5,
    "UNKNOWN": 0.5,
}


@dataclass(frozen=True)
class World:
    user_ids: np.ndarray  # int64[U]
    user_region: np.ndarray  # int32[U], index into regions
    user_device: np.ndarray  # int32[U], index into devices
    regions: list[str]
    devices: list[str]
    session_rate: np.ndarray  # float64[U], expected sessions per day
    affinity: np.ndarray  # float32[U, N_CATEGORIES], standardised per user
    video_ids: np.ndarray  # int64[V]
    video_categories: np.ndarray  # float32[V, N_CATEGORIES], rows sum to 1
    primary_category: np.ndarray  # int64[V]
    creator: np.ndarray  # int64[V], creator_id
    creator_index: np.ndarray  # int32[V], 0..C-1
    duration_ms: np.ndarray  # int64[V]
    upload_ts: np.ndarray  # int64[V]
    popularity: np.ndarray  # float64[V], power-law weight
    quality: np.ndarray  # float32[V], standardised log popularity

    @property
    def n_creators(self) -> int:
        return int(self.creator_index.max()) + 1

    def video_affinity(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """``z[u] · m[v]`` for aligned index arrays."""
        return np.einsum("ij,ij->i", self.affinity[users], self.video_categories[videos])


def _category_matrix(category_ids: pl.Series) -> np.ndarray:
    lengths = category_ids.list.len().to_numpy()
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = category_ids.explode().to_numpy()
    m = np.zeros((len(lengths), N_CATEGORIES), dtype=np.float32)
    np.add.at(m, (rows, cols), 1.0)
    return m / m.sum(axis=1, keepdims=True)


def user_affinity(static: np.ndarray, seed: int, noise: float) -> np.ndarray:
    """Standardised category affinity ``float32[U, N_CATEGORIES]`` (see module docstring)."""
    rng = np.random.default_rng([seed, 1])
    projection = rng.normal(0.0, 1.0 / np.sqrt(static.shape[1]), (static.shape[1], N_CATEGORIES))
    logits = static.astype(np.float64) @ projection
    logits += rng.normal(0.0, noise, logits.shape)
    logits -= logits.mean(axis=1, keepdims=True)
    logits /= logits.std(axis=1, keepdims=True) + 1e-9
    return logits.astype(np.float32)


def build_world(catalog: Catalog, cfg: SimConfig) -> World:
    """Sample the hidden world for ``cfg.seed`` (users subset, affinities, popularity)."""
    users = catalog.users.sort("user_id")
    if cfg.n_users is not None and cfg.n_users < len(users):
        pick = np.random.default_rng([cfg.seed, 0]).choice(len(users), cfg.n_users, replace=False)
        users = users[np.sort(pick)]
    all_static = catalog.users.sort("user_id")["static"].to_numpy()  # [U, USER_STATIC_DIM]
    affinity = user_affinity(all_static, cfg.seed, cfg.affinity_noise)
    index = np.searchsorted(catalog.users.sort("user_id")["user_id"].to_numpy(), users["user_id"])
    rng = np.random.default_rng([cfg.seed, 2])
    activity = users["activity"].replace_strict(ACTIVITY_FACTOR, default=1.0).to_numpy()
    session_rate = cfg.sessions_per_user_per_day * activity * rng.lognormal(-0.125, 0.5, len(users))
    regions = sorted(set(users["region"].to_list()))
    devices = sorted(set(users["device"].to_list()))

    videos = catalog.videos.sort("video_id")
    popularity = rng.pareto(cfg.popularity_alpha, len(videos)) + 1.0
    log_pop = np.log(popularity)
    creators = videos["creator_id"].to_numpy()
    return World(
        user_ids=users["user_id"].to_numpy(),
        user_region=np.searchsorted(regions, users["region"].to_numpy()).astype(np.int32),
        user_device=np.searchsorted(devices, users["device"].to_numpy()).astype(np.int32),
        regions=regions,
        devices=devices,
        session_rate=session_rate,
        affinity=affinity[index],
        video_ids=videos["video_id"].to_numpy(),
        video_categories=_category_matrix(videos["category_ids"]),
        primary_category=videos["primary_category"].to_numpy(),
        creator=creators,
        creator_index=np.unique(creators, return_inverse=True)[1].astype(np.int32),
        duration_ms=np.maximum(videos["duration_ms"].to_numpy(), 1),
        upload_ts=videos["upload_ts"].to_numpy(),
        popularity=popularity,
        quality=((log_pop - log_pop.mean()) / log_pop.std()).astype(np.float32),
    )
