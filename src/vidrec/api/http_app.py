"""The public HTTP API as a Starlette app: GET recommendations with query parameters, event
intake, models, metrics, OpenAPI and its explorer page (``/docs``). BentoML mounts it
(``@bentoml.asgi_app``) because its own ``@bentoml.api`` routes are POST-with-JSON only; the
app is transport glue over :class:`Api` and holds no logic of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from vidrec.api.body import BodyLimits, parse_json, read_body
from vidrec.api.errors import ApiError, parse_query
from vidrec.api.events import EventIntake, IntakeResult, Overloaded, unavailable
from vidrec.api.openapi import DOCS_PATH, PREFIX, RECOMMENDATION_QUERIES, docs_page, openapi_spec
from vidrec.api.request_metrics import CONTENT_TYPE, PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.backends.coldstart import ColdStart
from vidrec.config import ServingConfig
from vidrec.pipeline.base import DependencyError
from vidrec.schema import MAX_ID
from vidrec.security.auth import ANONYMOUS, FORGET_SCOPE, AuthError, Principal
from vidrec.security.forget import Eraser
from vidrec.security.guard import Guard, RateLimited


@dataclass
class Api:
    """What the routes need; BentoML builds it in the service's ``__init__``."""

    service: RecommendationService
    intake: EventIntake
    observer: PrometheusObserver
    cold_start: ColdStart | None = None  # tails new uploads into the live index (compose.py)
    guard: Guard = field(default_factory=Guard.open)  # auth + rate limits (vidrec.security)
    eraser: Eraser | None = None  # right to be forgotten; None = not offered (503)
    limits: BodyLimits = field(default_factory=lambda: BodyLimits.of(ServingConfig()))


OPEN_PATHS = frozenset(
    {f"{PREFIX}/health", f"{PREFIX}/metrics", f"{PREFIX}/openapi.json", DOCS_PATH}
)
"""Probes, Prometheus, the published contract and its explorer need no credentials."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class GuardMiddleware:
    """ASGI middleware: every route but :data:`OPEN_PATHS` passes :meth:`Guard.admit`; the
    principal is left in ``scope["state"]["principal"]`` for the routes that authorise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        api: Api | None = getattr(scope["app"].state, "api", None)
        if api is None:  # starting: the route answers 503
            await self.app(scope, receive, send)
            return
        peer = scope["client"][0] if scope.get("client") else None
        try:
            principal = api.guard.admit(
                _header(scope, b"authorization"), _header(scope, b"x-api-key"), peer
            )
        except AuthError as exc:
            api.observer.rejected("http", exc.error)
            body: dict[str, str | None] = {
                "error": exc.error, "field": "Authorization", "detail": exc.detail,
            }  # fmt: skip
            headers = {"WWW-Authenticate": 'Bearer realm="vidrec"'}
            await JSONResponse(body, status_code=401, headers=headers)(scope, receive, send)
            return
        except RateLimited as exc:
            api.observer.rejected("http", "rate_limited")
            body = {"error": "rate_limited", "field": None, "detail": str(exc)}
            headers = {"Retry-After": exc.retry_after_header}
            await JSONResponse(body, status_code=429, headers=headers)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _api(request: Request) -> Api:
    api: Api | None = getattr(request.app.state, "api", None)
    if api is None:
        raise ApiError(503, "unavailable", None, "service is starting")
    return api


def _error(exc: ApiError) -> JSONResponse:
    headers = exc.headers() if isinstance(exc, Overloaded) else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _refused(request: Request, exc: ApiError) -> JSONResponse:
    """The JSON error of a refused request; a 403 is also counted as a front-door rejection."""
    api_obj: Api | None = getattr(request.app.state, "api", None)
    if exc.status == 403 and api_obj is not None:
        api_obj.observer.rejected("http", "forbidden")
    return _error(exc)


def _principal(request: Request) -> Principal:
    """Who :class:`GuardMiddleware` admitted (anonymous when auth is off)."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


async def _json_body(request: Request, limits: BodyLimits) -> Any:
    """The body as JSON within ``limits``: 413 past the size (before reading it all), 400
    past the nesting depth (before parsing) or when it is not JSON."""
    if request.query_params:
        name = next(iter(request.query_params))
        raise ApiError(400, "unknown_parameter", name, "this endpoint takes no query parameters")
    raw = await read_body(request.stream(), request.headers.get("content-length"), limits.max_bytes)
    return parse_json(raw, limits.max_depth)


def _recommend_route(surface: str) -> Route:
    model = RECOMMENDATION_QUERIES[surface]

    async def handler(request: Request) -> Response:
        start = time.perf_counter()
        code, variant = 200, ""
        try:
            api = _api(request)
            params = {k: request.query_params.getlist(k) for k in request.query_params}
            query = parse_query(model, params)
            resp = await api.service.recommend(query, _principal(request))  # type: ignore[arg-type]
            variant = resp.variant
            return Response(resp.model_dump_json(), media_type="application/json")
        except ApiError as exc:
            code = exc.status
            return _refused(request, exc)
        finally:
            api_obj = getattr(request.app.state, "api", None)
            if api_obj is not None:
                api_obj.observer.request(surface, variant, code, time.perf_counter() - start)

    return Route(f"{PREFIX}/recommendations/{surface}", handler, methods=["GET"])


async def _counted(
    request: Request, endpoint: str, respond: Callable[[], Awaitable[Response]]
) -> Response:
    """A write endpoint's answer: an ApiError becomes its JSON error, and every answer is
    counted by status code (an unexpected exception as the 500 it becomes)."""
    code = 500
    try:
        response = await respond()
        code = response.status_code
        return response
    except ApiError as exc:
        code = exc.status
        return _refused(request, exc)
    finally:
        api_obj = getattr(request.app.state, "api", None)
        if api_obj is not None:
            api_obj.observer.request(endpoint, "", code, 0.0)


def _intake_route(
    path: str,
    endpoint: str,
    call: Callable[[EventIntake, Any, Principal], Awaitable[IntakeResult]],
) -> Route:
    async def accept(request: Request) -> Response:
        api = _api(request)
        payload = await _json_body(request, api.limits)
        try:
            result = await call(api.intake, payload, _principal(request))
        except DependencyError as exc:
            raise unavailable(exc) from exc
        return JSONResponse(result.body(), status_code=202)

    async def handler(request: Request) -> Response:
        return await _counted(request, endpoint, lambda: accept(request))

    return Route(path, handler, methods=["POST"])


def parse_user_id(raw: str) -> int:
    """A path id within the ids every other route accepts (:data:`~vidrec.schema.MAX_ID`)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or int(raw) > MAX_ID:
        raise ApiError(400, "invalid", "user_id", f"{raw!r}: expected an integer 0..{MAX_ID}")
    return int(raw)


async def _erase(request: Request) -> Response:
    api = _api(request)
    user_id = parse_user_id(request.path_params["user_id"])
    if not _principal(request).may_forget(user_id):
        why = f"a JWT may erase only its own subject, or needs scope {FORGET_SCOPE}"
        raise ApiError(403, "forbidden", "user_id", why)
    if api.eraser is None:
        raise ApiError(503, "unavailable", None, "erasure is not configured on this server")
    eraser = api.eraser
    try:
        done = await asyncio.to_thread(eraser.forget, user_id)
    except (redis.RedisError, OSError) as exc:
        raise ApiError(503, "redis_unavailable", None, f"retry: {type(exc).__name__}") from None
    api.observer.forgotten.inc()
    return JSONResponse(done.body(), status_code=200)


async def _forget(request: Request) -> Response:
    """DELETE /api/v1/users/{user_id}: erase the user's online state, leave a tombstone."""
    return await _counted(request, "forget_user", lambda: _erase(request))


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


_DOCS = docs_page()


async def _docs(request: Request) -> Response:
    return HTMLResponse(_DOCS)


async def _bug(request: Request, exc: Exception) -> Response:
    """An unexpected exception (our bug) still answers in the API's JSON error format."""
    body = {"error": "internal", "field": None, "detail": f"internal error: {type(exc).__name__}"}
    return JSONResponse(body, status_code=500)


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
        Route(f"{PREFIX}/users/{{user_id}}", _forget, methods=["DELETE"]),
        Route(DOCS_PATH, _docs, methods=["GET"]),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(GuardMiddleware)], exception_handlers={500: _bug}
    )
