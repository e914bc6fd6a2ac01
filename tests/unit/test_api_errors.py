"""Bad input → a 4xx naming the field, over the real Starlette app and the pure parsers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import redis
from starlette.testclient import TestClient

from tests.integration.redis_servers import standalone_redis
from tests.unit.api_fakes import ListWriter, NeverRunner
from vidrec.api.errors import MAX_BATCH, ApiError, check_batch_size, parse_query
from vidrec.api.events import (
    EventIntake,
    Overloaded,
    RedisStreamEventWriter,
    StreamLengths,
    validate_events,
    wall_ms,
)
from vidrec.api.grpc_server import status_of
from vidrec.api.http_app import Api, create_app
from vidrec.api.request_metrics import PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.contracts.routing import DEFAULT_TABLE, RoutingTable
from vidrec.schema import MAX_FUTURE_SKEW_MS, EngagementEvent, HomeQuery, RelatedQuery, VideoUpload

TS = 1_700_000_000_000  # epoch ms (2023-11-14)
EVENT: dict[str, Any] = {"event_id": "e1", "user_id": 3, "video_id": 9, "type": "click", "ts": TS}


def q(**params: str | list[str]) -> dict[str, list[str]]:
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


@pytest.mark.parametrize(
    ("params", "field", "error"),
    [
        (q(user_id="1", count="0"), "count", "invalid"),
        (q(user_id="1", count="101"), "count", "invalid"),
        (q(count="5"), "user_id", "missing_field"),
        (q(user_id="abc"), "user_id", "invalid"),
        (q(user_id="-4"), "user_id", "invalid"),
        (q(user_id="1.5"), "user_id", "invalid"),
        (q(user_id="1", region="North!"), "region", "invalid"),
        (q(user_id="1", cuont="5"), "cuont", "unknown_parameter"),
        (q(user_id=["1", "2"]), "user_id", "repeated_parameter"),
    ],
)
def test_parse_query_names_the_field(params: dict[str, list[str]], field: str, error: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_query(HomeQuery, params)
    assert (info.value.status, info.value.field, info.value.error) == (400, field, error)


def test_parse_query_coerces_valid_strings() -> None:
    got = parse_query(RelatedQuery, q(video_id="7", count="3"))
    assert got == RelatedQuery(video_id=7, count=3)


def test_batch_limits() -> None:
    with pytest.raises(ApiError) as info:
        check_batch_size(MAX_BATCH + 1, "events")
    assert (info.value.status, info.value.field) == (413, "events")
    with pytest.raises(ApiError) as info:
        check_batch_size(0, "events")
    assert info.value.status == 400


def test_validate_events_rejects_item_by_item_with_index_and_field() -> None:
    items = [EVENT, {**EVENT, "ts": "soon"}, {**EVENT, "type": "wink"}, {**EVENT, "x": 1}]
    batch = validate_events(items)
    assert batch.valid == [EngagementEvent(**EVENT)]
    assert [(r.index, r.field) for r in batch.rejections] == [
        (1, "events[1].ts"), (2, "events[2].type"), (3, "events[3].x"),
    ]  # fmt: skip


def test_validate_events_keeps_the_first_of_repeated_ids_and_reports_the_rest() -> None:
    items = [EVENT, {**EVENT, "event_id": "e2"}, {**EVENT, "video_id": 10}, EVENT, {"x": 1}]
    batch = validate_events(items)
    assert [(e.event_id, e.video_id) for e in batch.valid] == [("e1", 9), ("e2", 9)]
    assert batch.duplicates == [2, 3]
    assert [r.index for r in batch.rejections] == [4]  # invalid items are not "duplicates"


def test_far_future_timestamp_is_rejected_naming_ts() -> None:
    now = 1_700_000_000_000
    ok, late = now + MAX_FUTURE_SKEW_MS, now + MAX_FUTURE_SKEW_MS + 1
    batch = validate_events([{**EVENT, "ts": ok}, {**EVENT, "event_id": "e2", "ts": late}], now)
    assert [e.ts for e in batch.valid] == [ok]
    (rejection,) = batch.rejections
    assert (rejection.index, rejection.field) == (1, "events[1].ts")
    assert "future" in rejection.detail


async def default_table() -> RoutingTable:
    return DEFAULT_TABLE


@pytest.fixture
def client() -> tuple[TestClient, ListWriter]:
    writer = ListWriter()
    service = RecommendationService(NeverRunner(), {}, default_table, salt="s", raise_bugs=True)
    app = create_app()
    app.state.api = Api(service, EventIntake(writer), PrometheusObserver())
    return TestClient(app, raise_server_exceptions=True), writer


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/recommendations/home?user_id=1&count=500", "count"),
        ("/api/v1/recommendations/home?count=5", "user_id"),
        ("/api/v1/recommendations/related?video_id=x", "video_id"),
        ("/api/v1/recommendations/trending?region=north&user=3", "user"),
        ("/api/v1/recommendations/category?user_id=1&category=31", "category"),
    ],
)
def test_http_bad_query_is_400_naming_field(
    client: tuple[TestClient, ListWriter], url: str, field: str
) -> None:
    resp = client[0].get(url)
    assert resp.status_code == 400
    assert resp.json()["field"] == field and resp.json()["detail"]


def test_http_events_partial_accept(client: tuple[TestClient, ListWriter]) -> None:
    http, writer = client
    body = [EVENT, {**EVENT, "event_id": "e2", "user_id": "me"}]
    resp = http.post("/api/v1/events/engagement", content=json.dumps(body))
    assert resp.status_code == 202
    assert resp.json()["accepted"] == 1 and resp.json()["rejected"] == 1
    assert resp.json()["rejections"][0]["field"] == "events[1].user_id"
    assert [e.event_id for e in writer.events] == ["e1"]


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (json.dumps([EVENT] * (MAX_BATCH + 1)), 413, "events"),
        ("[]", 400, "events"),
        ("{not json", 400, "body"),
        (b"x" * (2 << 20), 413, "body"),
    ],
)
def test_http_bad_event_bodies(
    client: tuple[TestClient, ListWriter], content: str | bytes, status: int, field: str
) -> None:
    resp = client[0].post("/api/v1/events/engagement", content=content)
    assert (resp.status_code, resp.json()["field"]) == (status, field)
    assert client[1].events == []


def test_http_video_upload(client: tuple[TestClient, ListWriter]) -> None:
    http, writer = client
    video = {"video_id": 5, "creator_id": 2, "duration_ms": 9000, "upload_ts": TS}
    assert http.post("/api/v1/videos", json=video).status_code == 202
    assert writer.videos[0].as_event().type == "upload"
    resp = http.post("/api/v1/videos", json={**video, "duration_ms": 0})
    assert (resp.status_code, resp.json()["field"]) == (400, "duration_ms")


def test_openapi_lists_every_route(client: tuple[TestClient, ListWriter]) -> None:
    spec = client[0].get("/api/v1/openapi.json").json()
    assert {"/api/v1/recommendations/home", "/api/v1/events/engagement", "/api/v1/videos"} <= set(
        spec["paths"]
    )
    params = spec["paths"]["/api/v1/recommendations/home"]["get"]["parameters"]
    assert {p["name"]: p["required"] for p in params}["user_id"] is True


def test_http_dedupes_within_a_batch_and_rejects_future_uploads(
    client: tuple[TestClient, ListWriter],
) -> None:
    http, writer = client
    resp = http.post("/api/v1/events/engagement", json=[EVENT, EVENT, {**EVENT, "event_id": "e2"}])
    assert resp.status_code == 202
    assert (resp.json()["accepted"], resp.json()["duplicates"]) == (2, [1])
    assert [e.event_id for e in writer.events] == ["e1", "e2"]
    video = {"video_id": 5, "creator_id": 2, "duration_ms": 9000,
             "upload_ts": wall_ms() + MAX_FUTURE_SKEW_MS + 60_000}  # fmt: skip
    resp = http.post("/api/v1/videos", json=video)
    assert (resp.status_code, resp.json()["field"]) == (400, "upload_ts")
    assert writer.videos == []


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    with standalone_redis() as url:
        c = redis.Redis.from_url(url)
        yield c
        c.close()


@pytest.mark.integration  # starts a real redis-server
def test_full_stream_is_429_with_retry_after_and_nothing_written(
    redis_client: redis.Redis,
) -> None:
    redis_client.flushall()
    ticks = [0.0]
    writer = RedisStreamEventWriter(redis_client, "bp", 2, max_stream_len=3, retry_after_s=2,
                                    lengths=StreamLengths(0.1, lambda: ticks[0]))  # fmt: skip
    service = RecommendationService(NeverRunner(), {}, default_table, salt="s", raise_bugs=True)
    app = create_app()
    app.state.api = Api(service, EventIntake(writer), PrometheusObserver())
    http = TestClient(app)
    batch = [{**EVENT, "event_id": f"e{i}", "user_id": 4} for i in range(4)]  # partition bp:0

    assert http.post("/api/v1/events/engagement", json=batch).status_code == 202
    assert redis_client.xlen("bp:0") == 4
    # The cached length (0) is trusted for 100 ms: still accepted, as designed.
    assert http.post("/api/v1/events/engagement", json=batch[:1]).status_code == 202
    ticks[0] = 0.2  # the cache expires: XLEN says 5 > 3
    resp = http.post("/api/v1/events/engagement", json=batch[:1])
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.json()["error"] == "backpressure" and "bp:0" in resp.json()["detail"]
    assert redis_client.xlen("bp:0") == 5  # refused, not silently dropped after a write
    other = http.post("/api/v1/events/engagement", json=[{**EVENT, "user_id": 5}])
    assert other.status_code == 202  # another partition is not held back
    with pytest.raises(Overloaded) as info:
        asyncio.run(writer.append_video(VideoUpload(video_id=1, creator_id=4, duration_ms=1,
                                                    upload_ts=1)))  # fmt: skip
    assert status_of(info.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
