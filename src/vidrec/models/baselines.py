"""Baselines every new model must beat: popularity and matrix factorisation (``implicit``).

Popularity is the fallback the platform serves when everything else is down, so it is also the
floor of the quality gate. MF (ALS or BPR on the user x video click matrix) is the classic
collaborative-filtering reference for the two-tower model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class Popularity:
    """Videos ordered by (optionally recency-weighted) click count, most popular first."""

    video_ids: np.ndarray  # int64 [M], descending score
    scores: np.ndarray  # float64 [M]

    def top_k(self, k: int) -> np.ndarray:
        return self.video_ids[:k]

    def score(self, video_ids: np.ndarray) -> np.ndarray:
        """Popularity of each id; 0 for videos never clicked in training."""
        if self.video_ids.size == 0:
            return np.zeros(video_ids.shape)
        order = np.argsort(self.video_ids, kind="stable")
        sorted_ids = self.video_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, video_ids), 0, sorted_ids.size - 1)
        return np.where(sorted_ids[pos] == video_ids, self.scores[order][pos], 0.0)


def fit_popularity(
    video_ids: np.ndarray,
    weights: np.ndarray | None = None,
    days: np.ndarray | None = None,
    half_life_days: float | None = None,
) -> Popularity:
    """Sum of ``weights`` (default 1 per row, e.g. one retrieval row per click) per video.

    With ``half_life_days`` each row counts ``0.5 ** ((last_day - day) / half_life)``, so
    yesterday's hits outrank last month's. Ties break by smaller video id (deterministic).
    """
    w = np.ones(video_ids.size) if weights is None else weights.astype(np.float64)
    if half_life_days is not None:
        if days is None:
            raise ValueError("fit_popularity: half_life_days needs the 'day' column")
        w = w * 0.5 ** ((days.max(initial=0) - days) / half_life_days)
    ids, inverse = np.unique(video_ids, return_inverse=True)
    scores = np.bincount(inverse.ravel(), weights=w, minlength=ids.size)
    order = np.lexsort((ids, -scores))
    return Popularity(video_ids=ids[order].astype(np.int64), scores=scores[order])


@dataclass(frozen=True)
class MatrixFactorization:
    """A fitted ``implicit`` model plus the id maps between KuaiRec ids and matrix indices."""

    model: object
    user_ids: np.ndarray  # sorted; index = matrix row
    video_ids: np.ndarray  # sorted; index = matrix column
    fallback: Popularity

    def recommend(self, user_ids: np.ndarray, k: int) -> np.ndarray:
        """int64 ``[U, k]`` video ids; unknown users get the popularity list; -1 pads."""
        out = np.full((user_ids.size, k), -1, dtype=np.int64)
        popular = self.fallback.top_k(k)
        out[:, : popular.size] = popular
        pos = np.clip(np.searchsorted(self.user_ids, user_ids), 0, self.user_ids.size - 1)
        known = self.user_ids[pos] == user_ids
        n = min(k, self.video_ids.size)
        if known.any() and n > 0:
            rows = pos[known]
            empty = sp.csr_matrix((rows.size, self.video_ids.size), dtype=np.float32)
            items, _ = self.model.recommend(  # type: ignore[attr-defined]
                rows, empty, N=n, filter_already_liked_items=False
            )
            out[np.flatnonzero(known), :n] = self.video_ids[np.asarray(items)]
        return out


def fit_matrix_factorization(
    user_ids: np.ndarray,
    video_ids: np.ndarray,
    algorithm: Literal["als", "bpr"] = "als",
    factors: int = 64,
    iterations: int = 15,
    regularization: float = 0.05,
    threads: int = 2,
    seed: int = 7,
) -> MatrixFactorization:
    """Fit on (user, video) click pairs; repeated pairs add confidence."""
    users, u_idx = np.unique(user_ids, return_inverse=True)
    videos, v_idx = np.unique(video_ids, return_inverse=True)
    matrix = sp.csr_matrix(
        (np.ones(u_idx.size, np.float32), (u_idx.ravel(), v_idx.ravel())),
        shape=(users.size, videos.size),
    )
    with threadpool_limits(1, "blas"):  # implicit is slower, and warns, with threaded BLAS
        model = _implicit_model(algorithm, factors, iterations, regularization, threads, seed)
        model.fit(matrix, show_progress=False)  # type: ignore[attr-defined]
    return MatrixFactorization(
        model=model,
        user_ids=users.astype(np.int64),
        video_ids=videos.astype(np.int64),
        fallback=fit_popularity(video_ids),
    )


def _implicit_model(
    algorithm: str, factors: int, iterations: int, regularization: float, threads: int, seed: int
) -> object:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    kinds = {"als": AlternatingLeastSquares, "bpr": BayesianPersonalizedRanking}
    if algorithm not in kinds:
        raise ValueError(f"fit_matrix_factorization: unknown algorithm {algorithm!r}")
    model: object = kinds[algorithm](
        factors=factors,
        regularization=regularization,
        iterations=iterations,
        num_threads=threads,
        random_state=seed,
    )
    return model
