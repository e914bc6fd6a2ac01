"""The public HTTP API's OpenAPI 3.1 document, generated from the same pydantic models that
validate requests, so the published contract cannot drift from what the server accepts; and
the explorer page (Swagger UI) that renders it at ``/docs``."""

from __future__ import annotations

import html
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from vidrec.config import ServingConfig
from vidrec.schema import (
    MAX_FUTURE_SKEW_MS,
    MAX_ID,
    CategoryQuery,
    EngagementEvent,
    HomeQuery,
    RecommendationResponse,
    RelatedQuery,
    TrendingQuery,
    VideoUpload,
)

PREFIX = "/api/v1"
SPEC_PATH = f"{PREFIX}/openapi.json"
DOCS_PATH = "/docs"
SWAGGER_UI = "https://unpkg.com/swagger-ui-dist@5"  # the page's scripts; the spec is ours
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


ERROR_MEANINGS = {
    400: "bad input: `field` names the parameter, body field (`events[3].ts`) or `body`"
    " (not JSON, or nested deeper than the configured depth limit)",
    401: "missing or invalid credentials (`field`: `Authorization`)",
    403: "the credentials may not act for this user: an end-user JWT reads feeds and writes"
    " events only for its own `sub`; `field` names the id (`user_id`, `events[2].user_id`)."
    " API keys and JWTs with scope `recommendations:any-user` act for any user",
    404: "not found: the video the list is about is not in the catalogue (`field`: `video_id`)",
    413: "too large: the body is over the configured byte limit (`field`: `body`), or a"
    " batch has more than 1,000 items (`field`: `events`); the limit is in `detail`",
    429: "rate limited, or the event streams are behind (back-pressure): retry after the"
    " `Retry-After` header's seconds",
    503: "a dependency is unavailable, or the server is still starting: retry (writes are"
    " idempotent by `event_id`)",
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(_ref("Error"), ERROR_MEANINGS[c]) for c in codes}


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
    earliest = ServingConfig().earliest_event_ms  # the default window; intake enforces it
    for model, name in (("EngagementEvent", "ts"), ("VideoUpload", "upload_ts")):
        schemas[model]["properties"][name]["minimum"] = earliest
    paths: dict[str, Any] = {}
    for surface, query in RECOMMENDATION_QUERIES.items():
        paths[f"{PREFIX}/recommendations/{surface}"] = {
            "get": {
                "operationId": f"recommend_{surface}",
                "description": "A JWT without scope `recommendations:any-user` may ask only"
                " for its own `user_id`; without `user_id` (where optional) the list is"
                " anonymous and anyone's.",
                "parameters": _query_parameters(query),
                "responses": {
                    "200": _json(_ref("RecommendationResponse"), f"the {surface} list"),
                    **_errors(400, 403, *((404,) if surface == "related" else ()), 503),
                },
            }
        }
    batch = {
        "oneOf": [
            _ref("EngagementEvent"),
            {"type": "array", "minItems": 1, "maxItems": 1000, "items": _ref("EngagementEvent")},
        ]
    }
    rejection = {
        "type": "object",
        "required": ["index", "field", "detail"],
        "properties": {
            "index": {"type": "integer", "description": "position of the item in the batch"},
            "field": {"type": "string", "description": "e.g. `events[3].ts`"},
            "detail": {"type": "string", "description": "what is wrong and what to send"},
        },
    }
    accepted = {
        "type": "object",
        "required": ["accepted", "rejected", "duplicates", "rejections"],
        "properties": {
            "accepted": {"type": "integer", "description": "items appended"},
            "rejected": {"type": "integer", "description": "items refused (see rejections)"},
            "duplicates": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "indices of repeats of an earlier `event_id` in the batch"
                " (appended once, not an error)",
            },
            "rejections": {"type": "array", "items": rejection},
        },
    }
    paths[f"{PREFIX}/events/engagement"] = {
        "post": {
            "operationId": "log_engagement",
            "description": "One event or a batch. Valid events are appended and invalid ones"
            " reported by index (202); a batch is refused whole (403, nothing appended) if any"
            " valid event is for a user the caller may not act for. `ts` is milliseconds since"
            f" the Unix epoch: values below 1e11 are refused as seconds, and so are times"
            f" before the configured earliest time or more than {MAX_FUTURE_SKEW_MS} ms ahead.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": batch}}},
            "responses": {
                "202": _json(accepted, "appended to the event stream"),
                **_errors(400, 403, 413, 503),
            },
        }
    }
    paths[f"{PREFIX}/videos"] = {
        "post": {
            "operationId": "upload_video",
            "description": "The upload webhook; announced as an `upload` event of `creator_id`"
            " (a JWT may upload only as its own `sub`). `upload_ts`: milliseconds since the"
            " Unix epoch, under the same rules as an event's `ts`.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("VideoUpload")}},
            },
            "responses": {"202": _json(accepted, "queued"), **_errors(400, 403, 413, 503)},
        }
    }
    loaded = {
        "type": "object",
        "properties": {
            "ranker": {
                "type": "object",
                "properties": {
                    "triton_model": {"type": "string"},
                    "routing": {"type": "object", "description": "variants and their weights"},
                },
            },
            "manifest": {
                "type": "object",
                "description": "the serving artefact's manifest: version, feature-spec"
                " hashes, data window and offline metrics",
            },
        },
    }
    paths[f"{PREFIX}/models"] = {
        "get": {
            "operationId": "models",
            "responses": {"200": _json(loaded, "loaded models"), **_errors(503)},
        }
    }
    forgotten = {
        "type": "object",
        "required": ["user_id", "deleted_keys", "deleted_at_ms", "tombstone"],
        "properties": {
            "user_id": {"type": "integer"},
            "deleted_keys": {"type": "integer", "description": "online keys removed"},
            "deleted_at_ms": {
                "type": "integer",
                "description": "milliseconds since the Unix epoch",
            },
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
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                }
            ],
            "responses": {
                "200": _json(forgotten, "erased (idempotent)"),
                **_errors(400, 403, 503),
            },
        }
    }
    for item in paths.values():  # every operation so far needs credentials
        for op in item.values():
            op["responses"] |= _errors(401, 429)
    paths |= _open_paths()
    return {
        "openapi": "3.1.0",
        "info": {"title": "vidrec recommendations", "version": "v1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        # Either scheme; the server enforces them when keys / a JWT secret are configured.
        "security": [{"bearer": []}, {"apiKey": []}],
    }


def _open_paths() -> dict[str, Any]:
    """Probes, metrics, this document and its explorer: no credentials (``security: []``)."""
    health = {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean", "description": "warmed up and serving"}},
    }
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        f"{PREFIX}/health": {
            "get": {
                "operationId": "health",
                "security": [],
                "responses": {
                    "200": _json(health, "ready"),
                    "503": _json(health, "starting: not warmed up yet"),
                },
            }
        },
        f"{PREFIX}/metrics": {
            "get": {
                "operationId": "metrics",
                "security": [],
                "responses": {
                    "200": {"description": "Prometheus text exposition", "content": text},
                    **_errors(503),
                },
            }
        },
        SPEC_PATH: {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "this document")},
            }
        },
    }


def docs_page(spec_url: str = SPEC_PATH, assets: str = SWAGGER_UI) -> str:
    """The API explorer: Swagger UI over ``spec_url``. Its scripts come from ``assets`` (a
    CDN by default); without them the page still names and links the document."""
    url, cdn = html.escape(spec_url, quote=True), html.escape(assets, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>vidrec API</title>
  <link rel="stylesheet" href="{cdn}/swagger-ui.css">
</head>
<body>
  <noscript>The OpenAPI document is <a href="{url}">{url}</a>.</noscript>
  <div id="swagger-ui">Loading the explorer for <a href="{url}">{url}</a>…</div>
  <script src="{cdn}/swagger-ui-bundle.js" crossorigin></script>
  <script>
    window.onload = () => {{
      window.ui = SwaggerUIBundle({{url: "{url}", dom_id: "#swagger-ui"}});
    }};
  </script>
</body>
</html>
"""
