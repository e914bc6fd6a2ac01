"""The committed gRPC stubs are exactly what generate.py produces from proto/."""

from __future__ import annotations

from pathlib import Path

from vidrec.api.proto import generate


def test_regenerating_gives_identical_files(tmp_path: Path) -> None:
    for fresh in generate.generate(tmp_path):
        committed = generate.OUT_DIR / fresh.name
        assert committed.read_text() == fresh.read_text(), f"{committed} is stale: regenerate"


def test_stubs_import_relative_to_the_package() -> None:
    from vidrec.api.proto import recommender_pb2, recommender_pb2_grpc

    assert recommender_pb2_grpc.recommender__pb2 is recommender_pb2
    req = recommender_pb2.RecommendRequest(surface="home", user_id=0)
    assert req.HasField("user_id") and not req.HasField("count")
