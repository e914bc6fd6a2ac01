"""The HTTP API on uvicorn alone: the lean host for the hot routes.

The Recommender BentoML service mounts this same Starlette app (:func:`create_app`) behind
BentoML's ASGI middleware chain — an access-log line, an OpenTelemetry span and traffic metrics
per request — which a profile at 1M videos put at about 5 ms of CPU per home request
(docs/benchmarks.md). This entry serves the same app and the same
:class:`~vidrec.api.service.RecommendationService` with nothing around it: uvicorn, one event
loop, no access log. ``/api/v1/health`` answers 503 until warm-up has run, then 200; metrics
are the app's own ``/api/v1/metrics``. Which host serves the recommender is
``ServingConfig.http_host`` (``bentoml`` | ``uvicorn``).

``python -m vidrec.api.http_server --port N [--host H]``
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from vidrec.api.http_app import create_app
from vidrec.backends.remote import RemoteRetrieval
from vidrec.config import ServingConfig

log = logging.getLogger(__name__)


class _RetrievalHttp:
    """The Retrieval service's ``retrieve`` endpoint over one pooled HTTP client. The timeout is
    a backstop: the runner's stage deadline cancels the call first."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout_s)

    async def retrieve(self, *, name: str, query: dict[str, Any], k: int) -> Any:
        reply = await self._http.post("/retrieve", json={"name": name, "query": query, "k": k})
        reply.raise_for_status()
        return reply.json()


def remote_retrieval(cfg: ServingConfig) -> RemoteRetrieval | None:
    """The Retrieval service's client in ``remote`` mode; None serves retrieval in-process."""
    if cfg.retrieval_mode != "remote":
        return None
    return RemoteRetrieval(_RetrievalHttp(cfg.retrieval_url))


def lean_app() -> Starlette:
    """The API app whose lifespan builds the dependencies and warms them before it is ready."""
    app = create_app()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        from vidrec.api.compose import build_api
        from vidrec.api.warmup import warm_up
        from vidrec.config import load_config

        cfg = load_config()
        api = build_api(cfg, retrieval=remote_retrieval(cfg.serving))
        await warm_up(api, cfg.serving)  # health turns 200 only after: the first feed is warm
        app.state.api = api
        yield

    app.router.lifespan_context = lifespan
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="HTTP port")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a pod)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        lean_app(), host=args.host, port=args.port, access_log=False, lifespan="on",
        log_level="warning", timeout_graceful_shutdown=5,
    )  # fmt: skip


if __name__ == "__main__":
    main()
