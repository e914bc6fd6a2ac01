"""A planted-signal world for the model tests: latent factors drive every outcome.

Users and videos get latent vectors; a click's chance grows with their dot product, falls
with list position, and rises with video popularity. Features expose the factors with noise,
so a model that learns the interaction must beat popularity, and one that does not cannot.
Outputs follow the layouts in docs/architecture.md (ranker and retrieval examples, videos).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.schema import N_CATEGORIES, VIDEO_SCHEMA

DAY_MS = 86_400_000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class PlantedWorld:
    user_factors: np.ndarray  # [U, d]
    video_factors: np.ndarray  # [M, d]
    log_popularity: np.ndarray  # [M]
    video_ids: np.ndarray  # [M], not 0..M-1 on purpose (gaps exercise the id lookup)
    videos: pl.DataFrame
    seed: int

    def affinity(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """u·v for paired user and video indices."""
        return np.einsum("nd,nd->n", self.user_factors[users], self.video_factors[videos])


def make_world(
    n_users: int = 300, n_videos: int = 400, dim: int = 6, seed: int = 0
) -> PlantedWorld:
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(n_users, dim)) / np.sqrt(dim) * 1.5
    videos = rng.normal(size=(n_videos, dim)) / np.sqrt(dim) * 1.5
    log_pop = rng.normal(scale=1.0, size=n_videos)
    video_ids = np.arange(n_videos, dtype=np.int64) * 2 + 5
    primary = np.argmax(videos, axis=1) % N_CATEGORIES
    secondary = np.argmin(videos, axis=1) + dim
    table = pl.DataFrame(
        {
            "video_id": video_ids,
            "creator_id": rng.integers(0, 40, n_videos) * 1_000_003,
            "category_ids": [[int(p), int(s)] for p, s in zip(primary, secondary, strict=True)],
            "primary_category": primary.astype(np.int64),
            "category_name": [f"cat{p}" for p in primary],
            "caption": [""] * n_videos,
            "duration_ms": rng.integers(5_000, 120_000, n_videos),
            "upload_ts": np.zeros(n_videos, dtype=np.int64),
        },
        schema=VIDEO_SCHEMA,
    )
    return PlantedWorld(users, videos, log_pop, video_ids, table, seed)


def _array(values: np.ndarray, inner: pl.DataType) -> pl.Series:
    return pl.Series(values, dtype=pl.Array(inner, values.shape[1]))


def retrieval_examples(
    world: PlantedWorld, clicks_per_user: int = 24, n_days: int = 6, history_len: int = 8
) -> pl.DataFrame:
    """Each user's clicks drawn from softmax(3·u·v + log popularity), spread evenly over days."""
    rng = np.random.default_rng(world.seed + 1)
    n_users, n_videos = world.user_factors.shape[0], world.video_factors.shape[0]
    logits = 3.0 * world.user_factors @ world.video_factors.T + world.log_popularity
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random((n_users, clicks_per_user))
    clicks = np.minimum((draws[:, :, None] > cdf[:, None, :]).sum(axis=2), n_videos - 1)

    t = np.arange(clicks_per_user)
    back = t[:, None] - 1 - np.arange(history_len)[None, :]  # [T, H] earlier click index
    history = np.where(back >= 0, world.video_ids[clicks[:, np.clip(back, 0, None)]], -1)
    user_x = world.user_factors + rng.normal(scale=0.2, size=world.user_factors.shape)
    extra = rng.normal(size=(n_users, 2))  # uninformative columns
    user_x = np.hstack([user_x, extra]).astype(np.float32)

    u = np.repeat(np.arange(n_users), clicks_per_user)
    day = np.tile(t * n_days // clicks_per_user, n_users)
    return pl.DataFrame(
        {
            "user_id": u.astype(np.int64),
            "video_id": world.video_ids[clicks.ravel()],
            "ts": day.astype(np.int64) * DAY_MS + np.tile(t, n_users) * 1000,
            "day": day.astype(np.int32),
            "user_x": _array(user_x[u], pl.Float32()),
            "history": _array(history.reshape(-1, history_len).astype(np.int64), pl.Int64()),
        }
    )


def position_bias(position: np.ndarray) -> np.ndarray:
    """The planted logit penalty of being shown lower in the list."""
    return -0.35 * position


def ranker_examples(
    world: PlantedWorld, n_requests: int = 1000, slots: int = 20, n_days: int = 5
) -> pl.DataFrame:
    """Requests of ``slots`` random videos; outcomes from affinity, position and popularity."""
    rng = np.random.default_rng(world.seed + 2)
    n = n_requests * slots
    users = np.repeat(rng.integers(0, world.user_factors.shape[0], n_requests), slots)
    videos = rng.integers(0, world.video_factors.shape[0], n)
    position = np.tile(np.arange(slots), n_requests)
    aff = world.affinity(users, videos)
    click = rng.random(n) < _sigmoid(
        2.5 * aff + position_bias(position) + 0.3 * world.log_popularity[videos] - 0.5
    )
    long_view = click & (rng.random(n) < _sigmoid(2.0 * aff))
    like = long_view & (rng.random(n) < _sigmoid(1.5 * aff - 1.0))
    duration = world.videos["duration_ms"].to_numpy()[videos]
    watch_ms = np.where(click, duration * np.where(long_view, 0.9, 0.3), 0).astype(np.int64)

    noise = rng.normal(scale=0.2, size=(n, world.user_factors.shape[1]))
    uf, vf = world.user_factors[users] + noise, world.video_factors[videos]
    x = np.hstack([uf, vf, uf * vf, rng.normal(size=(n, 2))]).astype(np.float32)
    request = np.repeat(np.arange(n_requests), slots)
    day = (request * n_days // n_requests).astype(np.int32)
    return pl.DataFrame(
        {
            "request_id": [f"r{r}" for r in request],
            "user_id": users.astype(np.int64),
            "video_id": world.video_ids[videos],
            "ts": day.astype(np.int64) * DAY_MS + request,
            "day": day,
            "position": position.astype(np.int32),
            "click": click.astype(np.int8),
            "long_view": long_view.astype(np.int8),
            "like": like.astype(np.int8),
            "watch_ms": watch_ms,
            "x": _array(x, pl.Float32()),
        }
    )
