"""The public HTTP API as a Starlette app: GET recommendations with query parameters, event
intake, models, metrics, OpenAPI. BentoML mounts it (``@bentoml.asgi_app``) because its own
``@bentoml.api`` routes are POST-with-JSON only; the app is transport glue over
:class:`Api` and holds no logic of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vidrec.pipeline.base import DependencyError
from vidrec.serving.api.errors import ApiError, check_body_size, parse_query
from vidrec.serving.api.events import EventIntake, IntakeResult, Overloaded, unavailable
from vidrec.serving.api.metrics import CONTENT_TYPE, PrometheusObserver
from vidrec.serving.api.openapi import PREFIX, RECOMMENDATION_QUERIES, openapi_spec
from vidrec.serving.api.service import RecommendationService
from vidrec.serving.coldstart import ColdStart


@dataclass
class Api:
    """What the routes need; BentoML builds it in the service's ``__init__``."""

    service: RecommendationService
    intake: EventIntake
    observer: PrometheusObserver
    cold_start: ColdStart | None = None  # tails new uploads into the live index (compose.py)


def _api(request: Request) -> Api:
    api: Api | None = getattr(request.app.state, "api", None)
    if api is None:
        raise ApiError(503, "unavailable", None, "service is starting")
    return api


def _error(exc: ApiError) -> JSONResponse:
    headers = exc.headers() if isinstance(exc, Overloaded) else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _json_body(request: Request) -> Any:
    if request.query_params:
        name = next(iter(request.query_params))
        raise ApiError(400, "unknown_parameter", name, "this endpoint takes no query parameters")
    length = request.headers.get("content-length")
    check_body_size(int(length) if length and length.isdigit() else None)
    raw = await request.body()
    check_body_size(len(raw))
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "body", f"not JSON: {exc}") from None


def _recommend_route(surface: str) -> Route:
    model = RECOMMENDATION_QUERIES[surface]

    async def handler(request: Request) -> Response:
        start = time.perf_counter()
        code, variant = 200, ""
        try:
            api = _api(request)
            params = {k: request.query_params.getlist(k) for k in request.query_params}
            query = parse_query(model, params)
            resp = await api.service.recommend(query)  # type: ignore[arg-type]
            variant = resp.variant
            return Response(resp.model_dump_json(), media_type="application/json")
        except ApiError as exc:
            code = exc.status
            return _error(exc)
        finally:
            api_obj = getattr(request.app.state, "api", None)
            if api_obj is not None:
                api_obj.observer.request(surface, variant, code, time.perf_counter() - start)

    return Route(f"{PREFIX}/recommendations/{surface}", handler, methods=["GET"])


def _intake_route(
    path: str, endpoint: str, call: Callable[[EventIntake, Any], Awaitable[IntakeResult]]
) -> Route:
    async def handler(request: Request) -> Response:
        code = 202
        try:
            api = _api(request)
            payload = await _json_body(request)
            try:
                result = await call(api.intake, payload)
            except DependencyError as exc:
                raise unavailable(exc) from exc
            return JSONResponse(result.body(), status_code=202)
        except ApiError as exc:
            code = exc.status
            return _error(exc)
        finally:
            api_obj = getattr(request.app.state, "api", None)
            if api_obj is not None:
                api_obj.observer.request(endpoint, "", code, 0.0)

    return Route(path, handler, methods=["POST"])


async def _models(request: Request) -> Response:
    try:
        return JSONResponse(_api(request).service.models())
    except ApiError as exc:
        return _error(exc)


async def _metrics(request: Request) -> Response:
    try:
        return Response(_api(request).observer.exposition(), media_type=CONTENT_TYPE)
    except ApiError as exc:
        return _error(exc)


async def _health(request: Request) -> Response:
    ready = getattr(request.app.state, "api", None) is not None
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


_OPENAPI = openapi_spec()


async def _openapi(request: Request) -> Response:
    return JSONResponse(_OPENAPI)


def create_app() -> Starlette:
    """Routes only; set ``app.state.api`` to an :class:`Api` once dependencies are built."""
    routes = [_recommend_route(s) for s in RECOMMENDATION_QUERIES]
    routes += [
        _intake_route(f"{PREFIX}/events/engagement", "events", EventIntake.engagement),
        _intake_route(f"{PREFIX}/videos", "videos", EventIntake.video),
        Route(f"{PREFIX}/models", _models, methods=["GET"]),
        Route(f"{PREFIX}/metrics", _metrics, methods=["GET"]),
        Route(f"{PREFIX}/health", _health, methods=["GET"]),
        Route(f"{PREFIX}/openapi.json", _openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes)
