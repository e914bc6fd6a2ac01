"""Hostile input never yields a 5xx: oversized and deeply nested bodies, ids out of range or
boolean, timestamps in seconds or out of the window — each a JSON 4xx naming the field and the
limit, on every JSON route (real Starlette app) and over gRPC (a real grpc.aio server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import grpc
import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from tests.unit.api_fakes import ListWriter, NeverRunner
from vidrec.api.body import BodyLimits, json_depth, parse_json, read_body
from vidrec.api.errors import ApiError, parse_query
from vidrec.api.events import EventIntake, wall_ms
from vidrec.api.grpc_server import start_server
from vidrec.api.http_app import Api, create_app
from vidrec.api.proto import recommender_pb2 as pb
from vidrec.api.proto import recommender_pb2_grpc as pb_grpc
from vidrec.api.request_metrics import PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.config import ServingConfig, load_config
from vidrec.contracts.routing import DEFAULT_TABLE, RoutingTable
from vidrec.schema import (
    MAX_CREATOR_ID,
    MAX_ID,
    CategoryQuery,
    EngagementEvent,
    HomeQuery,
    RelatedQuery,
    TrendingQuery,
    VideoUpload,
    timestamp_problem,
)
from vidrec.security.auth import ANONYMOUS

TS = 1_700_000_000_000
EVENT: dict[str, Any] = {"event_id": "e1", "user_id": 3, "video_id": 9, "type": "click", "ts": TS}
VIDEO: dict[str, Any] = {"video_id": 5, "creator_id": 2, "duration_ms": 9000, "upload_ts": TS}
JSON_ROUTES = ("/api/v1/events/engagement", "/api/v1/videos")
LIMITS = BodyLimits(max_bytes=8192, max_depth=8)


async def _table() -> RoutingTable:
    return DEFAULT_TABLE


def make_api(limits: BodyLimits = LIMITS) -> tuple[Api, ListWriter]:
    writer = ListWriter()
    service = RecommendationService(NeverRunner(), {}, _table, salt="s", raise_bugs=True)  # type: ignore[arg-type]
    return Api(service, EventIntake(writer), PrometheusObserver(), limits=limits), writer


@pytest.fixture
def http() -> Iterator[tuple[TestClient, ListWriter]]:
    api, writer = make_api()
    app = create_app()
    app.state.api = api
    # raise_server_exceptions: a 500 would surface here as the exception itself.
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client, writer


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- body size and depth ---------------------------------------------------------------


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("depth", [9, 1_000, 3_000])
def test_deep_json_is_a_400_naming_the_limit(
    http: tuple[TestClient, ListWriter], path: str, depth: int
) -> None:
    body = b'{"a": ' * depth + b"1" + b"}" * depth if depth > 100 else nested(depth)
    if len(body) > LIMITS.max_bytes:
        body = nested(depth)[: LIMITS.max_bytes]  # unbalanced: still too deep, never parsed
    resp = http[0].post(path, content=body)
    assert resp.status_code == 400, resp.text
    got = resp.json()
    assert (got["error"], got["field"]) == ("too_deep", "body")
    assert f"the limit is {LIMITS.max_depth}" in got["detail"]


def test_default_limits_refuse_the_6_kb_recursion_bomb_without_a_500() -> None:
    api, writer = make_api(BodyLimits.of(ServingConfig()))
    app = create_app()
    app.state.api = api
    client = TestClient(app, raise_server_exceptions=True)
    bomb = b'{"a":' * 1200 + b"1" + b"}" * 1200  # ~7 KB: RecursionError in json.loads
    for path in JSON_ROUTES:
        resp = client.post(path, content=bomb)
        assert (resp.status_code, resp.json()["error"]) == (400, "too_deep"), path
    assert writer.events == []


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_oversized_body_is_a_413_naming_the_limit(
    http: tuple[TestClient, ListWriter], path: str
) -> None:
    resp = http[0].post(path, content=b" " * (LIMITS.max_bytes + 1))
    assert resp.status_code == 413
    got = resp.json()
    assert got["field"] == "body" and f"{LIMITS.max_bytes}-byte limit" in got["detail"]


def test_a_chunked_body_is_refused_before_it_is_read_in_full() -> None:
    """No Content-Length: the reader stops at the first chunk past the limit."""
    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(100):
            read.append(i)
            yield b"x" * 1000

    with pytest.raises(ApiError) as info:
        asyncio.run(read_body(chunks(), None, 4096))
    assert info.value.status == 413 and read == [0, 1, 2, 3, 4]
    with pytest.raises(ApiError):  # a declared length past the limit: nothing read at all
        asyncio.run(read_body(chunks(), str(10**30), 4096))
    assert read == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "body",
    [
        b'{"user_id": ' + b"9" * 5000 + b"}",  # int() refuses > 4300 digits: ValueError
        b"\xff\xfe not utf-8",
        b'"unterminated',
        b"[1, 2",
        b"",
    ],
)
def test_unparseable_bodies_are_a_400(http: tuple[TestClient, ListWriter], body: bytes) -> None:
    for path in JSON_ROUTES:
        resp = http[0].post(path, content=body)
        assert (resp.status_code, resp.json()["field"]) == (400, "body"), (path, resp.text)


def test_depth_ignores_brackets_inside_strings_and_escapes() -> None:
    assert json_depth(b"") == 0 and json_depth(b"1") == 0
    assert json_depth(json.dumps([{"a": "[[[[{{{{", "b": 'x\\"[[['}]).encode()) == 2
    assert json_depth(json.dumps({"a": "\\", "b": [[1]]}).encode()) == 3
    assert json_depth(nested(50)) == 50
    # An unterminated run of escaped quotes (quadratic for a regex scanner) stays linear.
    assert json_depth(b'"' + b'\\"' * 200_000) == 0
    assert parse_json(json.dumps([EVENT] * 3).encode(), 2) == [EVENT] * 3


# --- ids: one bound everywhere, booleans refused ----------------------------------------

BAD_IDS: list[Any] = [2**62, 2**70, -1, True, False, 1.5, "x"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("name", ["user_id", "video_id"])
def test_bad_event_ids_are_rejected_naming_the_field(
    http: tuple[TestClient, ListWriter], bad: Any, name: str
) -> None:
    client, writer = http
    resp = client.post(
        "/api/v1/events/engagement", json=[EVENT, {**EVENT, "event_id": "e2", name: bad}]
    )
    assert resp.status_code == 202
    assert resp.json()["rejections"] == [
        {"index": 1, "field": f"events[1].{name}", "detail": resp.json()["rejections"][0]["detail"]}
    ]
    assert [e.event_id for e in writer.events] == ["e1"]  # the valid item is kept


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("name", ["video_id", "creator_id"])
def test_bad_video_ids_are_a_400_naming_the_field(
    http: tuple[TestClient, ListWriter], bad: Any, name: str
) -> None:
    resp = http[0].post("/api/v1/videos", json={**VIDEO, name: bad})
    assert (resp.status_code, resp.json()["field"]) == (400, name)


def test_booleans_are_refused_wherever_a_number_is_expected() -> None:
    for model, data, field in [
        (EngagementEvent, {**EVENT, "ts": True}, "ts"),
        (EngagementEvent, {**EVENT, "watch_ms": True}, "watch_ms"),
        (EngagementEvent, {**EVENT, "position": False}, "position"),
        (VideoUpload, {**VIDEO, "duration_ms": True}, "duration_ms"),
        (VideoUpload, {**VIDEO, "category_ids": [True]}, "category_ids"),
        (HomeQuery, {"user_id": True}, "user_id"),
        (HomeQuery, {"user_id": 1, "count": True}, "count"),
    ]:
        with pytest.raises(ValidationError) as info:
            model.model_validate(data)
        assert info.value.errors()[0]["loc"][0] == field
        assert "boolean" in str(info.value)


def test_feeds_events_videos_and_deletes_share_one_id_bound() -> None:
    assert HomeQuery(user_id=MAX_ID).user_id == MAX_ID
    for model, data in [
        (HomeQuery, {"user_id": MAX_ID + 1}),
        (RelatedQuery, {"video_id": MAX_ID + 1}),
        (TrendingQuery, {"region": "north", "user_id": MAX_ID + 1}),
        (CategoryQuery, {"user_id": MAX_ID + 1, "category": 1}),
        (EngagementEvent, {**EVENT, "video_id": MAX_ID + 1}),
        (VideoUpload, {**VIDEO, "creator_id": MAX_ID + 1}),
    ]:
        with pytest.raises(ValidationError):
            model.model_validate(data)
    with pytest.raises(ApiError) as info:
        parse_query(HomeQuery, {"user_id": [str(MAX_ID + 1)]})
    assert (info.value.status, info.value.field) == (400, "user_id")


def test_a_creator_id_must_fit_the_float32_feature_it_is_stored_in() -> None:
    """Creator ids travel inside float32 feature vectors: the upload refuses what the cold
    start's feature write would refuse later (a fuzzer found the gap)."""
    assert VideoUpload.model_validate({**VIDEO, "creator_id": MAX_CREATOR_ID}).creator_id
    with pytest.raises(ValidationError, match="creator_id"):
        VideoUpload.model_validate({**VIDEO, "creator_id": MAX_CREATOR_ID + 1})


@pytest.mark.parametrize("raw", [str(MAX_ID + 1), str(2**70), "%C2%B2", "1e3", "-0"])
def test_delete_user_path_ids_use_the_same_bound(
    http: tuple[TestClient, ListWriter], raw: str
) -> None:
    resp = http[0].delete(f"/api/v1/users/{raw}")
    assert (resp.status_code, resp.json()["field"]) == (400, "user_id")


# --- timestamps ------------------------------------------------------------------------


def test_timestamp_rules_name_what_to_send_instead() -> None:
    now, earliest = 1_765_000_000_000, 946_684_800_000
    seconds = timestamp_problem(1_700_000_000, now, earliest)
    assert seconds is not None and "seconds" in seconds and "1700000000000" in seconds
    assert "earliest" in (timestamp_problem(earliest - 1, now, earliest) or "")
    assert "future" in (timestamp_problem(now + 10**9, now, earliest) or "")
    assert "e.g." not in (timestamp_problem(0, now, earliest) or "e.g.")  # 0 s is no hint either
    assert timestamp_problem(earliest, now, earliest) is None
    assert timestamp_problem(now, now, earliest) is None


@pytest.mark.parametrize(
    ("ts", "words"),
    [
        (1_700_000_000, "looks like seconds"),
        (1.7e9, "looks like seconds"),
        (0, "looks like seconds"),
        (900_000_000_000, "earliest"),  # 1998
        (10**15, "future"),
    ],
)
def test_http_event_and_upload_timestamps_outside_the_window_are_refused(
    http: tuple[TestClient, ListWriter], ts: float, words: str
) -> None:
    client, writer = http
    resp = client.post(
        "/api/v1/events/engagement", json=[EVENT, {**EVENT, "event_id": "e2", "ts": ts}]
    )
    assert resp.status_code == 202
    (rejection,) = resp.json()["rejections"]
    assert rejection["field"] == "events[1].ts" and words in rejection["detail"]
    assert [e.ts for e in writer.events] == [TS]
    resp = client.post("/api/v1/videos", json={**VIDEO, "upload_ts": ts})
    assert (resp.status_code, resp.json()["field"]) == (400, "upload_ts")
    assert words in resp.json()["detail"] and writer.videos == []


def test_the_earliest_time_and_the_limits_are_configuration() -> None:
    s = load_config(
        {
            "VIDREC_SERVING__MAX_BODY_BYTES": "100",
            "VIDREC_SERVING__MAX_JSON_DEPTH": "3",
            "VIDREC_SERVING__EARLIEST_EVENT_MS": str(TS + 1),
        }
    ).serving
    assert BodyLimits.of(s) == BodyLimits(100, 3)
    batch = asyncio.run(
        EventIntake(ListWriter(), earliest_ms=s.earliest_event_ms).engagement(EVENT, ANONYMOUS)
    )
    assert batch.accepted == 0 and "earliest" in batch.rejections[0].detail


# --- gRPC: the same bounds, INVALID_ARGUMENT naming the field --------------------------


def test_grpc_out_of_range_ids_and_second_timestamps_are_refused() -> None:
    api, writer = make_api()

    async def scenario() -> tuple[list[tuple[grpc.StatusCode, str]], Any]:
        server = await start_server(api, 0)
        out = []
        try:
            target = f"127.0.0.1:{server.bound_port}"  # type: ignore[attr-defined]
            async with grpc.aio.insecure_channel(target) as channel:
                stub = pb_grpc.RecommenderStub(channel)
                for req in (
                    pb.RecommendRequest(surface="home", user_id=2**62),
                    pb.RecommendRequest(surface="related", video_id=2**63 - 1),
                ):
                    try:
                        await stub.Recommend(req, timeout=10)
                    except grpc.aio.AioRpcError as exc:
                        out.append((exc.code(), exc.details() or ""))
                ev = {**EVENT, "ts": 1_700_000_000}
                ok = pb.EngagementEvent(**{**EVENT, "event_id": "ok"})
                big = pb.EngagementEvent(**{**EVENT, "event_id": "big", "user_id": 2**62})
                reply = await stub.LogEvents(
                    pb.EventBatch(events=[ok, pb.EngagementEvent(**ev), big]), timeout=10
                )
        finally:
            await server.stop(None)
        return out, reply

    refused, reply = asyncio.run(scenario())
    assert [code for code, _ in refused] == [grpc.StatusCode.INVALID_ARGUMENT] * 2
    assert refused[0][1].startswith("user_id:") and refused[1][1].startswith("video_id:")
    assert reply.accepted == 1
    assert [(r.index, r.field) for r in reply.rejections] == [
        (1, "events[1].ts"),
        (2, "events[2].user_id"),
    ]
    assert "seconds" in reply.rejections[0].detail
    assert [e.event_id for e in writer.events] == ["ok"]
    assert wall_ms() > TS  # the fixture's valid timestamp is in the past


def test_a_bug_still_answers_in_the_json_error_format() -> None:
    """The last resort: our bug is a 500, but a JSON one that names no internals."""

    class BrokenWriter(ListWriter):
        async def append(self, events: Sequence[EngagementEvent]) -> None:
            raise RuntimeError("secret internals")

    api, _ = make_api()
    api.intake = EventIntake(BrokenWriter())
    app = create_app()
    app.state.api = api
    resp = TestClient(app, raise_server_exceptions=False).post(
        "/api/v1/events/engagement", json=EVENT
    )
    assert resp.status_code == 500
    assert resp.json() == {
        "error": "internal",
        "field": None,
        "detail": "internal error: RuntimeError",
    }
