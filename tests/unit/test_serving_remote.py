import numpy as np
import pytest

from vidrec.backends.remote import from_columns, to_columns
from vidrec.pipeline.candidates import Retrieved, RetrievedVideo
from vidrec.pipeline.retrievers import Query


def test_columns_round_trip_keeps_every_field_in_order() -> None:
    rows = [RetrievedVideo(7, 0.5, 3, 2, 1_000, -1), RetrievedVideo(9, 0.25, 4, 1, 2_000, 7)]
    found = Retrieved.of(*zip(*((r.video_id, r.score, r.creator_id, r.category, r.upload_ts,
                                 r.anchor_video_id) for r in rows), strict=True))  # fmt: skip
    cols = to_columns(found)
    assert cols["video_id"] == [7, 9] and cols["anchor_video_id"] == [-1, 7]
    assert from_columns(cols) == found
    assert list(from_columns(cols)) == rows


def test_vectors_travel_as_float32_bytes() -> None:
    import base64

    v = np.array([0.1, -2.0, 3.5], dtype=np.float64)
    wire = Query(user_vector=v).to_json()
    back = np.frombuffer(base64.b64decode(wire["user_vector_b64"]), dtype=np.float32)
    np.testing.assert_array_equal(back, v.astype(np.float32))


def test_a_query_round_trips_and_a_bad_field_is_named() -> None:
    q = Query(np.ones(3, np.float32), (5, 7), "north", 3, 1_000)
    back = Query.from_json(q.to_json())
    assert back.video_ids == (5, 7) and (back.region, back.category, back.now_ms) == (
        "north", 3, 1_000,
    )  # fmt: skip
    assert back.user_vector is not None
    np.testing.assert_array_equal(back.user_vector, np.ones(3, np.float32))
    assert Query.from_json({}).user_vector is None
    with pytest.raises(ValueError, match=r"query\.video_ids"):
        Query.from_json({"video_ids": ["x"]})
    with pytest.raises(ValueError, match=r"query\.user_vector_b64"):
        Query.from_json({"user_vector_b64": "%%%"})
    with pytest.raises(ValueError, match=r"query\.category"):
        Query.from_json({"category": "music"})
