import numpy as np

from vidrec.backends.remote import b64_floats, from_columns, to_columns
from vidrec.pipeline.candidates import Retrieved, RetrievedVideo


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
    back = np.frombuffer(base64.b64decode(b64_floats(v)), dtype=np.float32)
    np.testing.assert_array_equal(back, v.astype(np.float32))
