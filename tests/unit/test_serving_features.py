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


def test_lru_maps_dense_sparse_and_negative_ids_alike() -> None:
    """Ids below DENSE_IDS go through the table, others (huge, negative) through the dict:
    both are found, evicted and counted the same way."""
    lru = VectorLRU(capacity=4, dim=1)
    ids = [3, 2**40, -5, 7]
    lru.insert(ids, np.arange(4, dtype=np.float32)[:, None])
    slots = lru.lookup([*ids, 8, 2**41])
    assert (slots[:4] >= 0).all() and (slots[4:] == -1).all()
    assert lru.take(slots[:4]).ravel().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert len(lru) == 4 and lru.hits == 4 and lru.misses == 2
    lru.lookup([2**40, 7])  # 3 and -5 are now the least recently used
    lru.insert([9, -6], np.array([[9.0], [-6.0]], np.float32))
    left = lru.lookup([3, -5, 2**40, 7, 9, -6])
    assert (left[:2] == -1).all() and (left[2:] >= 0).all()
    assert lru.take(left[2:]).ravel().tolist() == [1.0, 3.0, 9.0, -6.0]


def test_lru_insert_never_evicts_ids_of_its_own_batch() -> None:
    lru = VectorLRU(capacity=3, dim=1)
    lru.insert([1, 2, 3], np.array([[1.0], [2.0], [3.0]], np.float32))
    lru.lookup([2, 3])  # 1 is the least recently used ...
    lru.insert([1, 4], np.array([[10.0], [4.0]], np.float32))  # ... but it is in this batch
    slots = lru.lookup([1, 4, 2, 3])
    assert slots[0] >= 0 and slots[1] >= 0 and (slots[2:] >= 0).sum() == 1
    assert lru.take(slots[:2]).ravel().tolist() == [10.0, 4.0]


def test_lru_hits_always_return_the_latest_row_under_random_traffic() -> None:
    rng = np.random.default_rng(3)
    lru = VectorLRU(capacity=64, dim=1)
    latest: dict[int, float] = {}
    pool = np.concatenate([np.arange(200), [2**40, 2**40 + 1, -3]]).astype(np.int64)
    for step in range(300):
        ids = rng.choice(pool, size=int(rng.integers(1, 40)))
        slots = lru.lookup(ids)
        hit = slots >= 0
        got = lru.take(slots[hit]).ravel().tolist()
        assert got == [latest[i] for i in ids[hit].tolist()]
        miss = np.unique(ids[~hit])
        values = miss.astype(np.float32) + step
        lru.insert(miss, values[:, None])
        latest.update(zip(miss.tolist(), values.tolist(), strict=True))
        assert len(lru) <= 64
    assert lru.hits > 0 and lru.misses > 0


def test_a_cleared_lru_misses_everything_and_fills_again() -> None:
    lru = VectorLRU(capacity=8, dim=1)
    lru.insert([1, 2, 2**40], np.array([[1.0], [2.0], [3.0]], np.float32))
    lru.clear()
    assert len(lru) == 0 and (lru.lookup([1, 2, 2**40]) == -1).all()
    lru.insert(list(range(8)), np.arange(8, dtype=np.float32)[:, None])
    slots = lru.lookup(list(range(8)))
    assert len(lru) == 8 and lru.take(slots).ravel().tolist() == list(map(float, range(8)))
