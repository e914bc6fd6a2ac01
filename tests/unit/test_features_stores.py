"""Key layout, the in-memory store and materialise (Redis stores: tests/integration)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from vidrec.features.codec import unpack_many
from vidrec.features.materialize import materialize
from vidrec.features.spec import FeatureField, FeatureSpec
from vidrec.features.stores import InMemoryStore, key_for, make_store

SPEC = FeatureSpec("s", 1, (FeatureField("a", 3),))


def test_key_layout_carries_the_bucket_hash_tag() -> None:
    assert key_for("vf", 17, 64) == "vf:{b17}:17"
    assert key_for("vf", 81, 64) == "vf:{b17}:81"
    assert key_for("uf", 81, 8) == "uf:{b1}:81"


def test_memory_store_round_trip_and_delete() -> None:
    store = make_store("memory", n_buckets=4)
    assert isinstance(store, InMemoryStore)
    store.put_many("vf", [1, 2, 3], [b"a", b"b", b"c"])
    store.put_many("uf", [1], [b"user"])
    assert store.get_many("vf", [3, 9, 1]) == [b"c", None, b"a"]
    assert store.get_many("uf", [1, 2]) == [b"user", None]
    store.delete_many("vf", [1, 9])
    assert store.get_many("vf", [1, 2]) == [None, b"b"]
    with pytest.raises(ValueError, match="2 ids but 1 blobs"):
        store.put_many("vf", [1, 2], [b"x"])


def test_make_store_rejects_unknown_config() -> None:
    with pytest.raises(ValueError, match="RedisConfig"):
        make_store("redis")


def test_materialize_writes_every_row_in_batches() -> None:
    vectors = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    table = pl.DataFrame({"video_id": np.arange(10, 17), "vector": vectors})
    store = InMemoryStore()
    calls: list[int] = []
    put_many = store.put_many

    def counting(entity: str, ids: list[int], blobs: list[bytes]) -> None:
        calls.append(len(ids))
        put_many(entity, ids, blobs)

    store.put_many = counting
    assert materialize(table, SPEC, store, "vf", 123, batch_size=3, progress=False) == 7
    assert calls == [3, 3, 1]
    values, updated, present = unpack_many(SPEC, store.get_many("vf", list(range(10, 17))))
    assert present.all() and (updated == 123).all()
    np.testing.assert_array_equal(values, vectors)


def test_materialize_rejects_wrong_vector_width() -> None:
    table = pl.DataFrame({"video_id": [1], "vector": np.zeros((1, 4), np.float32)})
    with pytest.raises(ValueError, match=r"Array\(Float32, 3\)"):
        materialize(table, SPEC, InMemoryStore(), "vf", 0, progress=False)
