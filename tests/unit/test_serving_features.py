"""FeatureFetcher over an in-memory store: context assembly, LRU, fill rate, foreign blobs."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from vidrec.backends.features import FeatureFetcher
from vidrec.backends.lru import VectorLRU
from vidrec.config import ServingConfig
from vidrec.features import VIDEO_SPEC, InMemoryStore, pack_many, user_spec
from vidrec.features.session import SessionState, SessionStore
from vidrec.features.stores import USER_ENTITY, VIDEO_ENTITY
from vidrec.pipeline.base import DependencyError

USER_SPEC = user_spec(4)
CFG = ServingConfig(lru_size=100, default_region="central")


def fetcher(n_videos: int = 300) -> tuple[FeatureFetcher, np.ndarray]:
    store = InMemoryStore(n_buckets=8)
    rng = np.random.default_rng(0)
    videos = rng.normal(size=(n_videos, VIDEO_SPEC.dim)).astype(np.float32)
    store.put_many(VIDEO_ENTITY, list(range(n_videos)), pack_many(VIDEO_SPEC, videos, 1))
    users = rng.normal(size=(2, USER_SPEC.dim)).astype(np.float32)
    store.put_many(USER_ENTITY, [1, 2], pack_many(USER_SPEC, users, 1))
    SessionStore(store).put(1, SessionState(recent_watches=(5, 6), seen=(5, 6, 7), region="east"))
    return FeatureFetcher(store, USER_SPEC, CFG), videos


def test_user_context_known_and_unknown() -> None:
    f, _ = fetcher()
    known = asyncio.run(f.user_context(1, None))
    assert known.known and known.vector is not None and known.vector.shape == (USER_SPEC.dim,)
    assert known.region == "east" and known.recent_watches == (5, 6) and known.seen == {5, 6, 7}
    assert asyncio.run(f.user_context(1, "west")).region == "west"  # the request wins
    no_session = asyncio.run(f.user_context(2, None))
    assert no_session.known and no_session.region == "central" and no_session.device == "unknown"
    unknown = asyncio.run(f.user_context(99, None))
    assert not unknown.known and unknown.vector is None and unknown.region == "central"


def test_video_vectors_lru_hit_ratio_and_fill_rate() -> None:
    f, videos = fetcher()
    ids = [3, 1, 2, 1, 500]  # a duplicate and an absent id
    m, present = asyncio.run(f.video_vectors(ids))
    assert present.tolist() == [True, True, True, True, False]
    np.testing.assert_array_equal(m[:4], videos[[3, 1, 2, 1]])
    assert not m[4].any()
    assert f.lru.hits == 0 and f.lru.misses == 5
    hot = list(range(50))
    for _ in range(4):
        m, _ = asyncio.run(f.video_vectors(hot))
    np.testing.assert_array_equal(m, videos[:50])
    assert f.lru.hits == 150 + 3  # 3 warm passes of 50; ids 1, 2, 3 cached by the first call
    assert f.lru.hit_ratio == pytest.approx(153 / 205)
    assert f.fill_rate == pytest.approx((4 + 200) / 205)


def test_lru_evicts_least_recently_used() -> None:
    lru = VectorLRU(capacity=2, dim=1)
    lru.insert([1, 2], np.array([[1.0], [2.0]], np.float32))
    assert (lru.lookup([1]) >= 0).all()  # 1 is now most recent
    lru.insert([3], np.array([[3.0]], np.float32))
    slots = lru.lookup([1, 2, 3])
    assert slots[1] == -1 and lru.take(slots[[0, 2]]).ravel().tolist() == [1.0, 3.0]


def test_blob_of_another_spec_is_counted_and_missing() -> None:
    f, videos = fetcher()
    other = dataclasses.replace(VIDEO_SPEC, version=2)
    f.store.put_many(VIDEO_ENTITY, [7], pack_many(other, videos[7:8], 1))
    f.store.put_many(USER_ENTITY, [2], pack_many(user_spec(5), np.zeros((1, user_spec(5).dim)), 1))
    m, present = asyncio.run(f.video_vectors([6, 7, 8]))
    assert present.tolist() == [True, False, True] and not m[1].any()
    assert not asyncio.run(f.user_context(2, None)).known
    assert f.spec_mismatches == 2


class FailingStore(InMemoryStore):
    def get_many(self, entity: str, ids: object) -> list[bytes | None]:
        raise ConnectionError("store down")


def test_store_failure_is_a_dependency_error_then_circuit_open() -> None:
    f = FeatureFetcher(FailingStore(8), USER_SPEC, dataclasses.replace(CFG, breaker_failures=2))

    async def run() -> list[str]:
        reasons = []
        for _ in range(3):
            with pytest.raises(DependencyError) as err:
                await f.video_vectors([1, 2])
            reasons.append(err.value.reason)
        return reasons

    assert asyncio.run(run()) == ["unavailable", "unavailable", "circuit_open"]
