"""The published contract and its explorer: ``/docs`` is served (without credentials) and
loads ``/api/v1/openapi.json``; the document says what every error code means, that timestamps
are epoch milliseconds, and lists every field the API returns."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from starlette.testclient import TestClient

from vidrec.api.events import EventIntake, IntakeResult, Rejection
from vidrec.api.http_app import Api, create_app
from vidrec.api.openapi import DOCS_PATH, SPEC_PATH, docs_page, openapi_spec
from vidrec.api.request_metrics import PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.config import ServingConfig
from vidrec.contracts.routing import DEFAULT_TABLE, RoutingTable
from vidrec.schema import RecommendationResponse, RecommendedItem
from vidrec.security.auth import Authenticator
from vidrec.security.guard import Guard
from vidrec.security.ratelimit import RateLimiter

SPEC = openapi_spec()
SCHEMAS = SPEC["components"]["schemas"]


async def _table() -> RoutingTable:
    return DEFAULT_TABLE


def guarded_client() -> TestClient:
    service = RecommendationService(None, {}, _table, salt="s")  # type: ignore[arg-type]
    guard = Guard(Authenticator(["k"], "secret-for-tests-only-secret-for-tests!"), RateLimiter(0))
    app = create_app()
    app.state.api = Api(service, EventIntake(None), PrometheusObserver(), guard=guard)  # type: ignore[arg-type]
    return TestClient(app)


def test_docs_page_is_served_without_credentials_and_points_at_the_document() -> None:
    client = guarded_client()
    assert client.get("/api/v1/models").status_code == 401  # auth is on
    page = client.get(DOCS_PATH)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'url: "{SPEC_PATH}"' in page.text and "SwaggerUIBundle" in page.text
    assert f'href="{SPEC_PATH}"' in page.text  # a link to the document without scripts too
    assert client.get(SPEC_PATH).json()["paths"]  # the document it loads is open too


def test_docs_page_escapes_what_it_embeds() -> None:
    page = docs_page('/x"><script>alert(1)</script>')
    assert "<script>alert" not in page


def _responses(path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = SPEC["paths"][path][method]["responses"]
    return responses


def test_error_responses_say_what_they_are() -> None:
    events = _responses("/api/v1/events/engagement", "post")
    assert {"202", "400", "401", "403", "413", "429", "503"} <= events.keys()
    assert "own `sub`" in events["403"]["description"]
    assert "byte limit" in events["413"]["description"]
    assert "unavailable" in events["503"]["description"]
    descriptions = [r["description"] for r in events.values()]
    assert len(set(descriptions)) == len(descriptions)  # no generic "bad input" for all
    for surface in ("home", "related", "trending", "category"):
        feed = _responses(f"/api/v1/recommendations/{surface}", "get")
        assert {"200", "400", "401", "403", "429", "503"} <= feed.keys(), surface
    assert {"202", "403", "413"} <= _responses("/api/v1/videos", "post").keys()


def test_timestamps_are_documented_as_epoch_milliseconds() -> None:
    for model, name in (("EngagementEvent", "ts"), ("VideoUpload", "upload_ts")):
        prop = SCHEMAS[model]["properties"][name]
        assert "milliseconds since the Unix epoch" in prop["description"], model
        assert prop["maximum"] == 2**62 - 1
        assert prop["minimum"] == ServingConfig().earliest_event_ms  # seconds are below it
    assert "seconds" in SPEC["paths"]["/api/v1/events/engagement"]["post"]["description"]


def test_every_returned_field_is_listed() -> None:
    for model in (RecommendationResponse, RecommendedItem):
        assert set(SCHEMAS[model.__name__]["properties"]) == set(model.model_fields), model
    accepted = _responses("/api/v1/events/engagement", "post")["202"]["content"]
    accepted = accepted["application/json"]["schema"]
    body = IntakeResult(1, [Rejection(0, "events[0].ts", "x")], [2]).body()
    assert set(accepted["properties"]) == set(body) == set(accepted["required"])
    rejection = accepted["properties"]["rejections"]["items"]
    assert set(rejection["properties"]) == {f.name for f in fields(Rejection)}
    health = _responses("/api/v1/health", "get")
    assert health["200"]["content"]["application/json"]["schema"]["properties"].keys() == {"ready"}
    assert SPEC["paths"]["/api/v1/health"]["get"]["security"] == []
    models = _responses("/api/v1/models", "get")["200"]["content"]["application/json"]["schema"]
    assert {"ranker", "manifest"} <= models["properties"].keys()
