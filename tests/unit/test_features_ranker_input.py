"""assemble(): the one ranker-row builder; derived inputs checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidrec.features.context import context_vectors
from vidrec.features.ranker_input import (
    assemble,
    ranker_input_dim,
    ranker_input_spec,
    user_tower_dim,
    user_tower_input,
)
from vidrec.features.spec import CONTEXT_SPEC, RECENT_CREATORS, VIDEO_SPEC, user_spec

STATIC = 4
NOW = 1_700_000_000_000
HOUR = 3_600_000


def _vectors(rows: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    uspec = user_spec(STATIC)
    user = rng.random((rows, uspec.dim), dtype=np.float32)
    user[:, uspec.slice("recent_creators")] = -1
    user[0, uspec.slice("recent_creators")][:3] = [777, 5, 777]
    video = rng.random((rows, VIDEO_SPEC.dim), dtype=np.float32)
    video[:, VIDEO_SPEC.slice("creator_id")] = 777
    upload = np.array([NOW - 2 * HOUR, NOW - 50 * HOUR])[:rows]
    video[:, VIDEO_SPEC.slice("upload_day")] = (upload // 86_400_000)[:, None]
    video[:, VIDEO_SPEC.slice("upload_sec_of_day")] = ((upload % 86_400_000) // 1000)[:, None]
    ctx = context_vectors(NOW, ["ios"] * rows, 3)
    return user, video, ctx


def field(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, ranker_input_spec(STATIC).slice(name)]


def test_layout_and_copied_blocks() -> None:
    user, video, ctx = _vectors()
    x = assemble(user, video, ctx, NOW)
    assert x.shape == (2, ranker_input_dim(STATIC)) and x.dtype == np.float32
    uspec = user_spec(STATIC)
    np.testing.assert_array_equal(field(x, "user.static"), user[:, uspec.slice("static")])
    np.testing.assert_array_equal(
        field(x, "video.smoothed_ctr"), video[:, VIDEO_SPEC.slice("smoothed_ctr")]
    )
    np.testing.assert_array_equal(x[:, -CONTEXT_SPEC.dim - 4 : -4], ctx)
    names = {f.name for f in ranker_input_spec(STATIC).fields}
    assert not {"user.recent_creators", "video.creator_id", "video.upload_day"} & names


def test_derived_crosses() -> None:
    user, video, ctx = _vectors()
    x = assemble(user, video, ctx, NOW)
    np.testing.assert_allclose(field(x, "video.log_age_hours")[:, 0], np.log1p([2.0, 50.0]), 1e-6)
    np.testing.assert_array_equal(field(x, "cross.fresh")[:, 0], [1.0, 0.0])
    affinity = user[:, user_spec(STATIC).slice("category_affinity")]
    cats = video[:, VIDEO_SPEC.slice("categories")]
    np.testing.assert_allclose(
        field(x, "cross.category_match")[:, 0], (affinity * cats).sum(axis=1), rtol=1e-6
    )
    creator = field(x, "cross.creator_recent_watches")[:, 0]
    assert creator[0] == pytest.approx(math.log1p(2)) and creator[1] == 0.0


def test_scalar_and_per_row_now_agree_and_age_never_negative() -> None:
    user, video, ctx = _vectors()
    np.testing.assert_array_equal(
        assemble(user, video, ctx, NOW), assemble(user, video, ctx, np.array([NOW, NOW]))
    )
    early = assemble(user, video, ctx, NOW - 100 * HOUR)
    assert (field(early, "video.log_age_hours") == 0).all()


def test_shape_errors_name_the_block() -> None:
    user, video, ctx = _vectors()
    with pytest.raises(ValueError, match="video vectors"):
        assemble(user, video[:, :-1], ctx, NOW)
    with pytest.raises(ValueError, match="context vectors"):
        assemble(user, video, ctx[:1], NOW)


def test_user_tower_input_drops_raw_ids() -> None:
    user, _, _ = _vectors()
    ux = user_tower_input(user)
    assert ux.shape == (2, user_tower_dim(STATIC))
    assert user_tower_dim(STATIC) == user_spec(STATIC).dim - RECENT_CREATORS
    assert not (ux == 777).any()
