import numpy as np

from vidrec.pipeline.clients import RetrievedVideo
from vidrec.serving.remote import b64_floats, from_columns, to_columns


def test_columns_round_trip_keeps_every_field_in_order() -> None:
    found = [RetrievedVideo(7, 0.5, 3, 2, 1_000, -1), RetrievedVideo(9, 0.25, 4, 1, 2_000, 7)]
    cols = to_columns(found)
    assert cols["video_id"] == [7, 9] and cols["anchor_video_id"] == [-1, 7]
    assert from_columns(cols) == found


def test_vectors_travel_as_float32_bytes() -> None:
    import base64

    v = np.array([0.1, -2.0, 3.5], dtype=np.float64)
    back = np.frombuffer(base64.b64decode(b64_floats(v)), dtype=np.float32)
    np.testing.assert_array_equal(back, v.astype(np.float32))
