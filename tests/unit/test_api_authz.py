"""Authorisation per user: an end-user JWT reads feeds and writes events only for its own
``sub``; API keys and service-scope JWTs act for anyone. Every per-user HTTP route and RPC,
over the real Starlette app and a real grpc.aio server, with a runner that echoes the user (what
a leak would expose)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest
from starlette.testclient import TestClient

from tests.unit.api_fakes import ListWriter
from vidrec.api.events import EventIntake
from vidrec.api.grpc_server import start_server
from vidrec.api.http_app import Api, create_app
from vidrec.api.proto import recommender_pb2 as pb
from vidrec.api.proto import recommender_pb2_grpc as pb_grpc
from vidrec.api.request_metrics import PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.contracts.routing import DEFAULT_TABLE, RoutingTable
from vidrec.pipeline.base import Candidate, RequestContext, UnknownVideo
from vidrec.security.auth import (
    ANONYMOUS,
    FORGET_SCOPE,
    SERVICE_SCOPE,
    Authenticator,
    Principal,
)
from vidrec.security.guard import Guard
from vidrec.security.ratelimit import RateLimiter

SECRET = "authz-secret-for-tests-only-long-enough-for-hs256!!"
KEY = "svc-key-123"
A, B = 5, 6
TS = 1_700_000_000_000


def bearer(sub: int | str, scope: str = "") -> dict[str, str]:
    claims = {"sub": str(sub), "exp": int(time.time() + 60), "scope": scope}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


KEY_HEADERS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(params=["api_key", "service_jwt"])
def service_headers(request: pytest.FixtureRequest) -> dict[str, str]:
    """Service credentials, minted when the test runs (a JWT minted at collection expires
    before a long suite reaches the test)."""
    return KEY_HEADERS if request.param == "api_key" else bearer("gateway", SERVICE_SCOPE)


def event(user: int, i: int = 0) -> dict[str, Any]:
    return {"event_id": f"e{user}-{i}", "user_id": user, "video_id": 9, "type": "click", "ts": TS}


def video(creator: int) -> dict[str, Any]:
    return {"video_id": 77, "creator_id": creator, "duration_ms": 9000, "upload_ts": TS}


# Every HTTP route that takes a user id, as (method, path, json body) for user ``u``.
def routes(u: int) -> list[tuple[str, str, Any]]:
    feeds = "/api/v1/recommendations"
    return [
        ("GET", f"{feeds}/home?user_id={u}", None),
        ("GET", f"{feeds}/related?video_id=1&user_id={u}", None),
        ("GET", f"{feeds}/trending?region=north&user_id={u}", None),
        ("GET", f"{feeds}/category?category=3&user_id={u}", None),
        ("POST", "/api/v1/events/engagement", [event(u)]),
        ("POST", "/api/v1/videos", video(u)),
    ]


FIELD = {"/api/v1/events/engagement": "events[0].user_id", "/api/v1/videos": "creator_id"}


class EchoRunner:
    """Serves one item whose explanation names the user; records who was served."""

    def __init__(self) -> None:
        self.served: list[int | None] = []

    async def run(self, surface: Any, ctx: RequestContext) -> list[Candidate]:
        self.served.append(ctx.user_id)
        return [Candidate(1, "echo", 1.0, explanation=f"history of {ctx.user_id}")]

    async def fallback(self, surface: Any, ctx: RequestContext) -> list[Candidate]:
        raise AssertionError("no fallback expected")


async def _table() -> RoutingTable:
    return DEFAULT_TABLE


def make_api() -> tuple[Api, EchoRunner, ListWriter]:
    runner, writer = EchoRunner(), ListWriter()
    surfaces: dict[str, Any] = {s: object() for s in ("home", "related", "trending", "category")}
    service = RecommendationService(runner, surfaces, _table, salt="s", raise_bugs=True)  # type: ignore[arg-type]
    guard = Guard(Authenticator([KEY], SECRET), RateLimiter(0))
    return Api(service, EventIntake(writer), PrometheusObserver(), guard=guard), runner, writer


@pytest.fixture
def http() -> Iterator[tuple[TestClient, EchoRunner, ListWriter]]:
    api, runner, writer = make_api()
    app = create_app()
    app.state.api = api
    with TestClient(app) as client:
        yield client, runner, writer


def test_the_decision_is_one_method_on_principal() -> None:
    user = Principal("sub:5", "jwt", subject="5")
    assert user.may_act_for(A) and not user.may_act_for(B)
    assert user.may_act_for(None)  # anonymous feeds are anyone's
    assert Principal("key:x", "api_key").may_act_for(B)
    assert ANONYMOUS.may_act_for(B)  # auth off: local development
    assert Principal("sub:g", "jwt", subject="g", scopes=frozenset({SERVICE_SCOPE})).may_act_for(B)
    # Scopes do not leak into each other: erasure rights are not feed rights and vice versa.
    assert not Principal("sub:5", "jwt", subject="5", scopes=frozenset({FORGET_SCOPE})).may_act_for(
        B
    )
    assert not Principal("sub:g", "jwt", subject="g", scopes=frozenset({SERVICE_SCOPE})).may_forget(
        B
    )
    assert str(B) in user.not_for(B) and SERVICE_SCOPE in user.not_for(B)


def test_http_a_users_token_is_refused_for_b_on_every_route(
    http: tuple[TestClient, EchoRunner, ListWriter],
) -> None:
    client, runner, writer = http
    for method, path, body in routes(B):
        resp = client.request(method, path, json=body, headers=bearer(A))
        assert resp.status_code == 403, path
        got = resp.json()
        assert got["error"] == "forbidden", path
        assert got["field"] == FIELD.get(path, "user_id"), path
        assert f"user_id {B} is not the token's subject" in got["detail"], path
    assert runner.served == [] and writer.events == [] and writer.videos == []
    metrics = client.get("/api/v1/metrics").text
    assert 'vidrec_requests_rejected_total{reason="forbidden",transport="http"} 6.0' in metrics


def test_http_a_users_token_is_accepted_for_a(
    http: tuple[TestClient, EchoRunner, ListWriter],
) -> None:
    client, runner, writer = http
    for method, path, body in routes(A):
        resp = client.request(method, path, json=body, headers=bearer(A))
        assert resp.status_code in (200, 202), (path, resp.text)
    assert runner.served == [A] * 4
    assert [e.user_id for e in writer.events] == [A] and writer.videos[0].creator_id == A


def test_http_service_credentials_act_for_any_user(
    http: tuple[TestClient, EchoRunner, ListWriter], service_headers: dict[str, str]
) -> None:
    client, runner, writer = http
    headers = service_headers
    for user in (A, B):
        for method, path, body in routes(user):
            resp = client.request(method, path, json=body, headers=headers)
            assert resp.status_code in (200, 202), (path, resp.text)
    assert runner.served == [A] * 4 + [B] * 4
    assert {e.user_id for e in writer.events} == {A, B}


def test_http_anonymous_feeds_stay_open_to_any_authenticated_caller(
    http: tuple[TestClient, EchoRunner, ListWriter],
) -> None:
    client, runner, _ = http
    for path in ("related?video_id=1", "trending?region=north"):
        resp = client.get(f"/api/v1/recommendations/{path}", headers=bearer(A))
        assert resp.status_code == 200, path
    assert runner.served == [None, None]


def test_http_a_batch_naming_another_user_is_refused_whole_naming_the_index(
    http: tuple[TestClient, EchoRunner, ListWriter],
) -> None:
    client, _, writer = http
    batch = [event(A, 0), event(A, 1), event(B, 2)]
    resp = client.post("/api/v1/events/engagement", json=batch, headers=bearer(A))
    assert resp.status_code == 403
    assert resp.json()["field"] == "events[2].user_id"
    # Even when that event is invalid otherwise (and its id is a string, as the schema reads).
    bad = [event(A), {**event(B), "user_id": str(B), "type": "wink"}]
    resp = client.post("/api/v1/events/engagement", json=bad, headers=bearer(A))
    assert (resp.status_code, resp.json()["field"]) == (403, "events[1].user_id")
    assert writer.events == []
    # Items without a readable user id are the schema's business: a 202 with rejections.
    mixed = [event(A), {**event(A, 1), "user_id": "me"}]
    resp = client.post("/api/v1/events/engagement", json=mixed, headers=bearer(A))
    assert resp.status_code == 202 and resp.json()["rejections"][0]["field"] == "events[1].user_id"
    assert [e.user_id for e in writer.events] == [A]


# --- gRPC: the same rules, PERMISSION_DENIED with the same reason ------------------------


def grpc_calls(u: int) -> list[tuple[str, Any]]:
    return [
        ("Recommend", pb.RecommendRequest(surface="home", user_id=u)),
        ("Recommend", pb.RecommendRequest(surface="related", video_id=1, user_id=u)),
        ("Recommend", pb.RecommendRequest(surface="trending", region="north", user_id=u)),
        ("Recommend", pb.RecommendRequest(surface="category", category=3, user_id=u)),
        ("LogEvents", pb.EventBatch(events=[pb.EngagementEvent(**event(u))])),
    ]


def run_grpc(
    api: Api, calls: list[tuple[str, Any]], headers: dict[str, str]
) -> list[tuple[grpc.StatusCode, str]]:
    metadata = tuple((k.lower(), v) for k, v in headers.items())

    async def scenario() -> list[tuple[grpc.StatusCode, str]]:
        server = await start_server(api, 0)
        out = []
        try:
            target = f"127.0.0.1:{server.bound_port}"  # type: ignore[attr-defined]
            async with grpc.aio.insecure_channel(target) as channel:
                stub = pb_grpc.RecommenderStub(channel)
                for method, request in calls:
                    try:
                        await getattr(stub, method)(request, metadata=metadata, timeout=10)
                        out.append((grpc.StatusCode.OK, ""))
                    except grpc.aio.AioRpcError as exc:
                        out.append((exc.code(), exc.details() or ""))
        finally:
            await server.stop(None)
        return out

    return asyncio.run(scenario())


def test_grpc_a_users_token_is_denied_for_b_and_served_for_a() -> None:
    api, runner, writer = make_api()
    denied = run_grpc(api, grpc_calls(B), bearer(A))
    assert [code for code, _ in denied] == [grpc.StatusCode.PERMISSION_DENIED] * 5
    for (_, details), field in zip(denied, ["user_id"] * 4 + ["events[0].user_id"], strict=True):
        assert details.startswith(f"{field}: user_id {B} is not the token's subject"), details
    assert runner.served == [] and writer.events == []
    served = run_grpc(api, grpc_calls(A), bearer(A))
    assert [code for code, _ in served] == [grpc.StatusCode.OK] * 5
    assert runner.served == [A] * 4 and [e.user_id for e in writer.events] == [A]


def test_grpc_service_credentials_act_for_any_user(service_headers: dict[str, str]) -> None:
    api, runner, writer = make_api()
    got = run_grpc(api, grpc_calls(A) + grpc_calls(B), service_headers)
    assert [code for code, _ in got] == [grpc.StatusCode.OK] * 10
    assert runner.served == [A] * 4 + [B] * 4
    assert [e.user_id for e in writer.events] == [A, B]


class UnknownVideoRunner(EchoRunner):
    """Answers as the pipeline does for a video the catalogue does not hold."""

    async def run(self, surface: Any, ctx: RequestContext) -> list[Candidate]:
        if ctx.anchor_video_id == 404:
            raise UnknownVideo(404)
        return await super().run(surface, ctx)


def test_an_unknown_video_is_not_found_on_both_transports() -> None:
    api, _, _ = make_api()
    api.service.runner = UnknownVideoRunner()
    ask = pb.RecommendRequest(surface="related", video_id=404, user_id=A)
    [(code, details)] = run_grpc(api, [("Recommend", ask)], bearer(A))
    assert code == grpc.StatusCode.NOT_FOUND and details.startswith("video_id: "), details
    known = pb.RecommendRequest(surface="related", video_id=1, user_id=A)
    [(ok, _)] = run_grpc(api, [("Recommend", known)], bearer(A))
    assert ok == grpc.StatusCode.OK
    app = create_app()
    app.state.api = api
    with TestClient(app) as client:
        answer = client.get("/api/v1/recommendations/related?video_id=404", headers=bearer(A))
    assert answer.status_code == 404 and answer.json()["field"] == "video_id"
