"""The ranker's input row, assembled by one function for training and serving alike.

Offline examples and online requests both hand stored entity vectors to :func:`assemble`, so
derived inputs (video age, user x video crosses) are computed by the same code from the same
values: there is no second implementation to drift. Raw id/timestamp fields of the entity
vectors (``USER_RAW_FIELDS``, ``VIDEO_RAW_FIELDS``) feed the derived inputs and are dropped.

The layout is itself a :class:`FeatureSpec` (``ranker_input_spec``), so its hash can go into
the model manifest and a model is never served rows of another layout.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vidrec.features.context import HOUR_MS
from vidrec.features.spec import (
    CONTEXT_SPEC,
    USER_RAW_FIELDS,
    VIDEO_RAW_FIELDS,
    VIDEO_SPEC,
    FeatureField,
    FeatureSpec,
    user_spec,
)

FRESH_HOURS = 24.0
"""Videos younger than this get the ``fresh`` flag."""

_CROSS_FIELDS = (
    FeatureField("video.log_age_hours"),
    FeatureField("cross.fresh"),
    FeatureField("cross.category_match"),
    FeatureField("cross.creator_recent_watches"),
)


def _model_fields(spec: FeatureSpec, raw: frozenset[str], prefix: str) -> list[FeatureField]:
    return [FeatureField(f"{prefix}.{f.name}", f.dim) for f in spec.fields if f.name not in raw]


@lru_cache(maxsize=8)
def user_tower_spec(static_dim: int) -> FeatureSpec:
    """Layout of retrieval ``user_x``: the user vector without its raw id fields."""
    return FeatureSpec(
        name="user_tower_input",
        version=1,
        fields=tuple(_model_fields(user_spec(static_dim), USER_RAW_FIELDS, "user")),
    )


@lru_cache(maxsize=8)
def ranker_input_spec(static_dim: int) -> FeatureSpec:
    """Layout of the ranker's ``x``: user block, video block, context, derived crosses."""
    return FeatureSpec(
        name="ranker_input",
        version=1,
        fields=(
            *user_tower_spec(static_dim).fields,
            *_model_fields(VIDEO_SPEC, VIDEO_RAW_FIELDS, "video"),
            *(FeatureField(f"context.{f.name}", f.dim) for f in CONTEXT_SPEC.fields),
            *_CROSS_FIELDS,
        ),
    )


def ranker_input_dim(static_dim: int) -> int:
    return ranker_input_spec(static_dim).dim


def user_tower_dim(static_dim: int) -> int:
    return user_tower_spec(static_dim).dim


def _static_dim(user_vecs: np.ndarray) -> int:
    base = user_spec(1).dim - 1
    if user_vecs.ndim != 2 or user_vecs.shape[1] <= base:
        raise ValueError(
            f"user vectors: expected shape (B, {base} + static_dim), got {user_vecs.shape}"
        )
    return int(user_vecs.shape[1] - base)


@lru_cache(maxsize=16)
def _columns(spec: FeatureSpec, raw: frozenset[str]) -> np.ndarray:
    return np.concatenate(
        [np.arange(spec.dim)[spec.slice(f.name)] for f in spec.fields if f.name not in raw]
    )


def user_tower_input(user_vecs: np.ndarray) -> np.ndarray:
    """(B, user_tower_dim) float32 retrieval ``user_x`` from packed user vectors."""
    spec = user_spec(_static_dim(user_vecs))
    return np.ascontiguousarray(user_vecs[:, _columns(spec, USER_RAW_FIELDS)], dtype=np.float32)


def _check(name: str, vecs: np.ndarray, spec: FeatureSpec, rows: int) -> None:
    if vecs.shape != (rows, spec.dim):
        raise ValueError(f"{name} vectors: expected shape ({rows}, {spec.dim}), got {vecs.shape}")


def assemble(
    user_vecs: np.ndarray,
    video_vecs: np.ndarray,
    context_vecs: np.ndarray,
    now_ms: np.ndarray | int,
) -> np.ndarray:
    """(B, ranker_input_dim) float32 rows from row-aligned user, video and context vectors.

    ``now_ms`` is the request time (a scalar when serving, each example's ts offline).
    """
    rows = video_vecs.shape[0]
    static_dim = _static_dim(user_vecs)
    uspec = user_spec(static_dim)
    _check("user", user_vecs, uspec, rows)
    _check("video", video_vecs, VIDEO_SPEC, rows)
    _check("context", context_vecs, CONTEXT_SPEC, rows)
    v = VIDEO_SPEC

    upload_ms = (
        video_vecs[:, v.slice("upload_day")].astype(np.float64) * 86_400_000
        + video_vecs[:, v.slice("upload_sec_of_day")].astype(np.float64) * 1000
    )[:, 0]
    now = np.broadcast_to(np.asarray(now_ms, dtype=np.float64), (rows,))
    age_hours = np.maximum(now - upload_ms, 0.0) / HOUR_MS
    affinity = user_vecs[:, uspec.slice("category_affinity")]
    categories = video_vecs[:, v.slice("categories")]
    recent = user_vecs[:, uspec.slice("recent_creators")]
    creator = video_vecs[:, v.slice("creator_id")]
    same_creator = ((recent == creator) & (recent >= 0)).sum(axis=1)

    blocks = [
        user_vecs[:, _columns(uspec, USER_RAW_FIELDS)],
        video_vecs[:, _columns(v, VIDEO_RAW_FIELDS)],
        context_vecs,
        np.log1p(age_hours)[:, None],
        (age_hours < FRESH_HOURS)[:, None],
        (affinity * categories).sum(axis=1, keepdims=True),
        np.log1p(same_creator)[:, None],
    ]
    out = np.concatenate([b.astype(np.float32, copy=False) for b in blocks], axis=1)
    assert out.shape[1] == ranker_input_dim(static_dim), "blocks out of step with the spec"
    return out
