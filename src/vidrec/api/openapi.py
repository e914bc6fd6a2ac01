"""The public HTTP API's OpenAPI 3.1 document, generated from the same pydantic models that
validate requests, so the published contract cannot drift from what the server accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from vidrec.schema import (
    CategoryQuery,
    EngagementEvent,
    HomeQuery,
    RecommendationResponse,
    RelatedQuery,
    TrendingQuery,
    VideoUpload,
)

PREFIX = "/api/v1"
RECOMMENDATION_QUERIES: dict[str, type[BaseModel]] = {
    "home": HomeQuery,
    "related": RelatedQuery,
    "trending": TrendingQuery,
    "category": CategoryQuery,
}
_REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key or an HS256 JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_ERROR = {
    "type": "object",
    "required": ["error", "field", "detail"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": ["string", "null"], "description": "the offending field"},
        "detail": {"type": "string"},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(_ref("Error"), "bad input; `field` names it") for c in codes}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def openapi_spec() -> dict[str, Any]:
    models: list[type[BaseModel]] = [RecommendationResponse, EngagementEvent, VideoUpload]
    _, defs = models_json_schema([(m, "serialization") for m in models], ref_template=_REF)
    schemas = {**defs["$defs"], "Error": _ERROR}
    paths: dict[str, Any] = {}
    for surface, query in RECOMMENDATION_QUERIES.items():
        paths[f"{PREFIX}/recommendations/{surface}"] = {
            "get": {
                "operationId": f"recommend_{surface}",
                "parameters": _query_parameters(query),
                "responses": {
                    "200": _json(_ref("RecommendationResponse"), f"the {surface} list"),
                    **_errors(400),
                },
            }
        }
    batch = {
        "oneOf": [
            _ref("EngagementEvent"),
            {"type": "array", "maxItems": 1000, "items": _ref("EngagementEvent")},
        ]
    }
    accepted = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "rejections": {"type": "array", "items": {"type": "object"}},
        },
    }
    paths[f"{PREFIX}/events/engagement"] = {
        "post": {
            "operationId": "log_engagement",
            "requestBody": {"required": True, "content": {"application/json": {"schema": batch}}},
            "responses": {
                "202": _json(accepted, "appended to the event stream"),
                **_errors(400, 413, 503),
            },
        }
    }
    paths[f"{PREFIX}/videos"] = {
        "post": {
            "operationId": "upload_video",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("VideoUpload")}},
            },
            "responses": {"202": _json(accepted, "queued"), **_errors(400, 413, 503)},
        }
    }
    paths[f"{PREFIX}/models"] = {
        "get": {
            "operationId": "models",
            "responses": {"200": _json({"type": "object"}, "loaded models")},
        }
    }
    forgotten = {
        "type": "object",
        "required": ["user_id", "deleted_keys", "deleted_at_ms", "tombstone"],
        "properties": {
            "user_id": {"type": "integer"},
            "deleted_keys": {"type": "integer", "description": "online keys removed"},
            "deleted_at_ms": {"type": "integer"},
            "tombstone": {"type": "boolean"},
            "already_forgotten": {"type": "boolean"},
        },
    }
    paths[f"{PREFIX}/users/{{user_id}}"] = {
        "delete": {
            "operationId": "forget_user",
            "description": "Right to be forgotten: removes the user's online features and"
            " session state and leaves a tombstone that the lake writer and training honour."
            " API keys, the user's own JWT (`sub`) or a JWT with scope `users:forget`.",
            "parameters": [
                {
                    "name": "user_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1},
                }
            ],
            "responses": {
                "200": _json(forgotten, "erased (idempotent)"),
                **_errors(400, 403, 503),
            },
        }
    }
    for item in paths.values():  # every published operation needs credentials
        for op in item.values():
            op["responses"] |= {
                "401": _json(_ref("Error"), "missing or invalid credentials"),
                "429": _json(_ref("Error"), "rate limited; see Retry-After"),
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": "vidrec recommendations", "version": "v1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        # Either scheme; the server enforces them when keys / a JWT secret are configured.
        "security": [{"bearer": []}, {"apiKey": []}],
    }
