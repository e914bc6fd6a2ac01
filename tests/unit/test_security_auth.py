"""Auth (API keys, HS256 JWT), per-client token buckets and the HTTP front door.

The HTTP tests run the real Starlette app (TestClient) over fakes of the pipeline: what is
under test is the middleware and the erasure route, not recommendations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from vidrec.api.events import EventIntake
from vidrec.api.http_app import Api, create_app
from vidrec.api.request_metrics import PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.config import ServingConfig, load_config
from vidrec.contracts.routing import DEFAULT_TABLE, RoutingTable
from vidrec.security.auth import FORGET_SCOPE, Authenticator, AuthError, key_id
from vidrec.security.forget import Forgotten
from vidrec.security.guard import Guard, RateLimited
from vidrec.security.ratelimit import RateLimiter

SECRET = "s3cret-for-tests-only-and-long-enough-for-hs256-and-hs512-keys!!"
KEY = "k-live-123456"


def token(sub: str = "42", secret: str = SECRET, exp_s: float = 60, **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time() + exp_s), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


AUTH = Authenticator([KEY, "other-key"], SECRET)


def test_auth_off_lets_everyone_in_as_anonymous() -> None:
    assert Authenticator().authenticate(None).kind == "anonymous"


def test_missing_credentials_say_what_to_send() -> None:
    with pytest.raises(AuthError) as info:
        AUTH.authenticate(None)
    assert info.value.error == "missing_credentials"
    assert "Authorization: Bearer" in info.value.detail


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer wrong-key", f"Token {KEY}"])
def test_bad_credentials_are_refused(header: str) -> None:
    with pytest.raises(AuthError) as info:
        AUTH.authenticate(header)
    assert info.value.error == "invalid_credentials"


def test_api_key_by_bearer_or_x_api_key_and_its_id_is_not_the_key() -> None:
    a = AUTH.authenticate(f"Bearer {KEY}")
    b = AUTH.authenticate(None, KEY)
    assert a == b and a.kind == "api_key" and a.client_id == key_id(KEY)
    assert KEY not in a.client_id


def test_jwt_subject_scopes_and_failures() -> None:
    p = AUTH.authenticate(f"Bearer {token('7', scope=f'read {FORGET_SCOPE}')}")
    assert (p.kind, p.subject, p.client_id) == ("jwt", "7", "sub:7")
    assert FORGET_SCOPE in p.scopes
    for bad in (
        token(exp_s=-3600),  # expired
        token(secret="another-secret-another-secret-another-secret-another-secret-xx"),  # forged
        jwt.encode({"sub": "1"}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"sub": "1", "exp": time.time() + 60}, SECRET, algorithm="HS512"),
    ):
        with pytest.raises(AuthError):
            AUTH.authenticate(f"Bearer {bad}")


def test_unsigned_jwt_is_refused() -> None:
    unsigned = jwt.encode({"sub": "1", "exp": time.time() + 60}, None, algorithm="none")
    with pytest.raises(AuthError):
        AUTH.authenticate(f"Bearer {unsigned}")


def test_who_may_forget_whom() -> None:
    assert AUTH.authenticate(f"Bearer {KEY}").may_forget(5)
    assert AUTH.authenticate(f"Bearer {token('5')}").may_forget(5)
    assert not AUTH.authenticate(f"Bearer {token('6')}").may_forget(5)
    assert AUTH.authenticate(f"Bearer {token('6', scope=FORGET_SCOPE)}").may_forget(5)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_burst_refill_and_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.check("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.check("a")
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert refused.retry_after_header == "1"
    assert limiter.check("b").allowed  # another client has its own bucket
    clock.t += 0.5
    assert limiter.check("a").allowed and not limiter.check("a").allowed
    clock.t += 100  # refills up to the burst, not beyond
    assert [limiter.check("a").allowed for _ in range(4)] == [True, True, True, False]


def test_limiter_off_and_bounded_memory() -> None:
    assert all(RateLimiter(0).check("x").allowed for _ in range(1000))
    limiter = RateLimiter(1.0, 1, max_clients=10)
    for i in range(100):
        limiter.check(f"c{i}")
    assert len(limiter._buckets) == 10


def test_rate_limit_config_from_env() -> None:
    cfg = load_config(
        {
            "VIDREC_SERVING__API_KEYS": "a,b",
            "VIDREC_SERVING__RATE_LIMIT_PER_S": "5",
            "VIDREC_SERVING__RATE_LIMIT_BURST": "7",
        }
    ).serving
    guard = Guard.from_config(cfg)
    assert guard.auth.enabled and guard.limiter.rate == 5 and guard.limiter.burst == 7
    assert "api_keys" not in repr(cfg) and "jwt_secret" not in repr(cfg)  # secrets: no repr
    assert not Guard.from_config(ServingConfig()).auth.enabled


def test_guard_limits_anonymous_callers_by_address() -> None:
    guard = Guard(Authenticator(), RateLimiter(1.0, 1))
    guard.admit(None, None, "10.0.0.1")
    guard.admit(None, None, "10.0.0.2")
    with pytest.raises(RateLimited):
        guard.admit(None, None, "10.0.0.1")


# --- the HTTP front door ---------------------------------------------------------------


class NoWriter:
    async def append(self, events: Any) -> None:
        pass

    async def append_video(self, video: Any) -> None:
        pass


class FakeEraser:
    def __init__(self) -> None:
        self.forgotten: list[int] = []

    def forget(self, user_id: int) -> Forgotten:
        self.forgotten.append(user_id)
        return Forgotten(user_id, 2, 1, already=False)


async def _table() -> RoutingTable:
    return DEFAULT_TABLE


@pytest.fixture
def app() -> Iterator[tuple[TestClient, FakeEraser, PrometheusObserver]]:
    service = RecommendationService(None, {}, _table, salt="s")  # type: ignore[arg-type]
    eraser, observer = FakeEraser(), PrometheusObserver()
    guard = Guard(Authenticator([KEY], SECRET), RateLimiter(0.01, 3))
    application = create_app()
    application.state.api = Api(
        service,
        EventIntake(NoWriter()),
        observer,
        guard=guard,
        eraser=eraser,  # type: ignore[arg-type]
    )
    with TestClient(application) as client:
        yield client, eraser, observer


EVENT = {"event_id": "e1", "user_id": 9, "video_id": 9, "type": "click", "ts": 1_700_000_000_000}


def test_http_without_credentials_is_401_naming_the_header(
    app: tuple[TestClient, FakeEraser, PrometheusObserver],
) -> None:
    client, _, _ = app
    for method, path in (
        ("GET", "/api/v1/recommendations/home?user_id=1"),
        ("POST", "/api/v1/events/engagement"),
        ("DELETE", "/api/v1/users/1"),
        ("GET", "/api/v1/models"),
    ):
        resp = client.request(method, path)
        assert resp.status_code == 401, path
        body = resp.json()
        assert body["error"] == "missing_credentials" and body["field"] == "Authorization"
        assert resp.headers["www-authenticate"].startswith("Bearer")


def test_http_probes_metrics_and_spec_stay_open(
    app: tuple[TestClient, FakeEraser, PrometheusObserver],
) -> None:
    client, _, _ = app
    for path in ("/api/v1/health", "/api/v1/metrics", "/api/v1/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_http_credentials_admit_and_rate_limit_is_429_with_retry_after(
    app: tuple[TestClient, FakeEraser, PrometheusObserver],
) -> None:
    client, _, _observer = app
    codes = [
        client.post("/api/v1/events/engagement", json=EVENT, headers={"X-API-Key": KEY}).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [202, 202, 202] and 429 in codes[3:]
    resp = client.post("/api/v1/events/engagement", json=EVENT, headers={"X-API-Key": KEY})
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"] == "rate_limited"
    # A JWT client has its own bucket.
    jwt_headers = {"Authorization": f"Bearer {token('9')}"}
    assert (
        client.post("/api/v1/events/engagement", json=EVENT, headers=jwt_headers).status_code == 202
    )
    text = client.get("/api/v1/metrics").text
    assert 'vidrec_requests_rejected_total{reason="rate_limited",transport="http"}' in text
    assert KEY not in text and key_id(KEY) not in text


def test_http_forget_authorises_by_subject_and_validates_the_id(
    app: tuple[TestClient, FakeEraser, PrometheusObserver],
) -> None:
    client, eraser, _ = app
    own = {"Authorization": f"Bearer {token('5')}"}
    resp = client.delete("/api/v1/users/5", headers=own)
    assert resp.status_code == 200 and resp.json()["tombstone"] is True
    assert client.delete("/api/v1/users/6", headers=own).status_code == 403
    bad = client.delete("/api/v1/users/-1", headers={"X-API-Key": KEY})
    assert bad.status_code == 400 and bad.json()["field"] == "user_id"
    huge = client.delete(f"/api/v1/users/{1 << 64}", headers={"X-API-Key": KEY})
    assert huge.status_code == 400
    assert eraser.forgotten == [5]


def test_openapi_declares_security_and_the_erasure_call() -> None:
    from vidrec.api.openapi import openapi_spec

    spec = openapi_spec()
    assert {"bearer", "apiKey"} <= spec["components"]["securitySchemes"].keys()
    op = spec["paths"]["/api/v1/users/{user_id}"]["delete"]
    assert {"200", "400", "401", "403", "429"} <= op["responses"].keys()


def test_grpc_without_credentials_is_unauthenticated_and_with_them_is_served() -> None:
    import asyncio

    import grpc

    from vidrec.api.grpc_server import start_server
    from vidrec.api.proto import recommender_pb2 as pb
    from vidrec.api.proto import recommender_pb2_grpc as pb_grpc

    service = RecommendationService(None, {}, _table, salt="s")  # type: ignore[arg-type]
    guard = Guard(Authenticator([KEY], SECRET), RateLimiter(0))
    api = Api(service, EventIntake(NoWriter()), PrometheusObserver(), guard=guard)

    async def scenario() -> list[grpc.StatusCode]:
        server = await start_server(api, 0)
        codes = []
        try:
            target = f"127.0.0.1:{server.bound_port}"  # type: ignore[attr-defined]
            async with grpc.aio.insecure_channel(target) as channel:
                stub = pb_grpc.RecommenderStub(channel)
                for metadata in (None, (("authorization", "Bearer nope"),),
                                 (("authorization", f"Bearer {KEY}"),)):  # fmt: skip
                    try:
                        await stub.LogEvents(pb.EventBatch(), metadata=metadata, timeout=10)
                        codes.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as exc:
                        codes.append(exc.code())
        finally:
            await server.stop(None)
        return codes

    # Admitted with a key, the empty batch is then refused as bad input: past the door.
    assert asyncio.run(scenario()) == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
    ]
