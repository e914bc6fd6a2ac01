"""The same API over gRPC (``proto/recommender.proto``), on the same RecommendationService.

BentoML 1.4 has no gRPC, so this is a plain ``grpc.aio`` server with health checking and
reflection. Requests are turned into the same pydantic query types as HTTP (only the fields
the caller set, thanks to proto3 ``optional``), so validation and its messages are identical:
bad input → INVALID_ARGUMENT whose message starts with the field name.

``python -m vidrec.api.grpc_server --port N --metrics-port M``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from vidrec.api.errors import ApiError, validate
from vidrec.api.events import unavailable
from vidrec.api.http_app import Api
from vidrec.api.openapi import RECOMMENDATION_QUERIES
from vidrec.api.proto import recommender_pb2 as pb
from vidrec.api.proto import recommender_pb2_grpc as pb_grpc
from vidrec.pipeline.base import DependencyError
from vidrec.schema import RecommendationResponse
from vidrec.security.auth import ANONYMOUS, AuthError, Principal
from vidrec.security.guard import RateLimited

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
log = logging.getLogger(__name__)


def set_fields(msg: Message) -> dict[str, Any]:
    """The fields the caller set (proto3 ``optional`` tells 0 from unset)."""
    return {f.name: value for f, value in msg.ListFields()}


def to_proto(resp: RecommendationResponse) -> pb.RecommendResponse:
    return pb.RecommendResponse(
        request_id=resp.request_id,
        surface=resp.surface,
        variant=resp.variant,
        items=[pb.RecommendedItem(**item.model_dump()) for item in resp.items],
        degraded=resp.degraded,
        degraded_reasons=resp.degraded_reasons,
    )


def status_of(exc: ApiError) -> grpc.StatusCode:
    if exc.status == 429:  # back-pressure: the client backs off and retries
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if exc.status == 403:  # may not act for that user (vidrec.api.errors.authorise)
        return grpc.StatusCode.PERMISSION_DENIED
    if exc.status == 404:  # e.g. related to a video the catalogue does not hold
        return grpc.StatusCode.NOT_FOUND
    return grpc.StatusCode.UNAVAILABLE if exc.status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


def _metadata(context: grpc.aio.ServicerContext, name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key.lower() == name:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class RecommenderServicer(pb_grpc.RecommenderServicer):
    def __init__(self, api: Api) -> None:
        self.api = api

    async def _admit(self, context: grpc.aio.ServicerContext) -> Principal:
        """Credentials (metadata ``authorization: Bearer <token>``) and the rate limit:
        UNAUTHENTICATED / RESOURCE_EXHAUSTED, before any work. The caller, to authorise."""
        try:
            return self.api.guard.admit(
                _metadata(context, "authorization"), _metadata(context, "x-api-key"),
                context.peer(),
            )  # fmt: skip
        except AuthError as exc:
            self.api.observer.rejected("grpc", exc.error)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{exc.error}: {exc.detail}")
        except RateLimited as exc:
            self.api.observer.rejected("grpc", "rate_limited")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return ANONYMOUS  # unreachable: abort raises

    async def _abort(self, context: grpc.aio.ServicerContext, exc: ApiError) -> None:
        """The ApiError as its status code, the message ``"<field>: <detail>"`` as on HTTP."""
        if exc.status == 403:
            self.api.observer.rejected("grpc", "forbidden")
        await context.abort(status_of(exc), str(exc))

    async def Recommend(
        self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendResponse:
        principal = await self._admit(context)
        start = time.perf_counter()
        fields = set_fields(request)
        surface = fields.pop("surface", "")
        code, variant = 200, ""
        try:
            model = RECOMMENDATION_QUERIES.get(surface)
            if model is None:
                allowed = ", ".join(RECOMMENDATION_QUERIES)
                raise ApiError(400, "invalid", "surface", f"{surface!r}; expected one of {allowed}")
            query = validate(model, fields)
            resp = await self.api.service.recommend(query, principal)  # type: ignore[arg-type]
            variant = resp.variant
            return to_proto(resp)
        except ApiError as exc:
            code = exc.status
            await self._abort(context, exc)
            raise  # unreachable: abort raises
        finally:
            endpoint = surface if surface in RECOMMENDATION_QUERIES else "invalid"
            self.api.observer.request(f"grpc_{endpoint}", variant, code,
                                      time.perf_counter() - start)  # fmt: skip

    async def LogEvents(
        self, request: pb.EventBatch, context: grpc.aio.ServicerContext
    ) -> pb.LogEventsResponse:
        principal = await self._admit(context)
        code = 202
        try:
            try:
                events = [set_fields(e) for e in request.events]
                result = await self.api.intake.engagement(events, principal)
            except DependencyError as exc:
                raise unavailable(exc) from exc
        except ApiError as exc:
            code = exc.status
            await self._abort(context, exc)
            raise
        finally:
            self.api.observer.request("grpc_events", "", code, 0.0)
        return pb.LogEventsResponse(
            accepted=result.accepted,
            rejected=len(result.rejections),
            rejections=[pb.EventRejection(**r.__dict__) for r in result.rejections],
        )


async def start_server(api: Api, port: int, host: str = "127.0.0.1") -> grpc.aio.Server:
    """Started server on ``host:port`` (0 → a free port: read it from ``bound_port``)."""
    server = grpc.aio.server()
    pb_grpc.add_RecommenderServicer_to_server(RecommenderServicer(api), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.bound_port = bound  # type: ignore[attr-defined,unused-ignore]
    return server


async def _serve(port: int, metrics_port: int, host: str) -> None:
    from vidrec.api.compose import build_api
    from vidrec.api.warmup import warm_up
    from vidrec.config import load_config

    cfg = load_config()
    api = build_api(cfg)
    await warm_up(api, cfg.serving)  # before the port opens: the first RPC finds it warm
    start_http_server(metrics_port, addr=host, registry=api.observer.registry)
    server = await start_server(api, port, host)
    log.info("gRPC on %s:%d, metrics on %s:%d", host, port, host, metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(args.port, args.metrics_port, args.host))


if __name__ == "__main__":
    main()
