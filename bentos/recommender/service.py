"""vidrec's BentoML services: thin adapters over ``vidrec`` (no logic here).

- ``Recommender``: the public API. Its GET/POST routes are a Starlette app mounted with
  ``@bentoml.asgi_app`` (``@bentoml.api`` routes are POST-with-JSON only in BentoML 1.4);
  it runs the pipeline in-process, retrieval included by default; with
  ``VIDREC_SERVING__RETRIEVAL_MODE=remote`` it composes ``Retrieval`` with ``bentoml.depends``.
- ``Retrieval`` and ``Features``: the candidate sources and feature fetcher as their own
  services, for consumers other than the feed (batch jobs, other surfaces), each scaled on
  its own. Vectors travel as base64 float32 bytes, not JSON float lists.

Serve: ``bentoml serve service:Recommender`` (or ``:Retrieval`` / ``:Features``) from this
directory; settings come from ``VIDREC_*`` environment variables (``vidrec.config``).
"""

from __future__ import annotations

import base64
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

from vidrec.api.compose import build_api, keep_live, redis_client
from vidrec.api.http_app import create_app
from vidrec.api.warmup import warm_up
from vidrec.backends.features import FeatureFetcher
from vidrec.backends.remote import RemoteRetrieval, to_columns
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import load_config
from vidrec.features import make_store, user_spec
from vidrec.pipeline.retrievers import Query

CFG = load_config()
app = create_app()


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


@bentoml.service(name="vidrec-retrieval", traffic={"timeout": 10})
class Retrieval:
    def __init__(self) -> None:
        state = ServingState.load(CFG.serving.artefacts_dir)
        self.r = LocalRetrieval(state, CFG.serving)
        if CFG.serving.retrieval_mode == "remote":  # this process owns the live index
            store = make_store(CFG.redis, CFG.features.n_buckets)
            keep_live(CFG, state, redis_client(store), self.r, store)

    @bentoml.api
    async def retrieve(self, name: str, query: dict[str, Any], k: int) -> dict[str, Any]:
        """Any registered retriever (``vidrec.pipeline.retrievers``): one endpoint for all."""
        try:
            parsed = Query.from_json(query)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        if k < 1:
            raise InvalidArgument(f"k: must be >= 1, got {k}")
        try:
            return to_columns(await self.r.retrieve(name, parsed, k))
        except KeyError as exc:
            raise InvalidArgument(f"name: {exc.args[0]}") from None


@bentoml.service(name="vidrec-features", traffic={"timeout": 10})
class Features:
    def __init__(self) -> None:
        state = ServingState.load(CFG.serving.artefacts_dir)
        store = make_store(CFG.redis, CFG.features.n_buckets)
        self.f = FeatureFetcher(store, user_spec(state.static_dim), CFG.serving,
                                n_buckets=CFG.features.n_buckets)  # fmt: skip

    @bentoml.api
    async def user_context(self, user_id: int, region: str | None = None) -> dict[str, Any]:
        u = await self.f.user_context(user_id, region)
        return {
            "user_id": u.user_id, "known": u.known, "region": u.region, "device": u.device,
            "vector_b64": None if u.vector is None else b64(u.vector.astype(np.float32)),
            "recent_watches": list(u.recent_watches), "seen": sorted(u.seen),
            "not_interested_videos": sorted(u.not_interested_videos),
            "not_interested_creators": sorted(u.not_interested_creators),
            "blocked_creators": sorted(u.blocked_creators), "session_depth": u.session_depth,
        }  # fmt: skip

    @bentoml.api
    async def video_vectors(self, video_ids: list[int]) -> dict[str, Any]:
        matrix, present = await self.f.video_vectors(video_ids)
        return {"dim": int(matrix.shape[1]), "matrix_b64": b64(matrix), "present_b64": b64(present)}


@bentoml.service(name="vidrec-recommender", traffic={"timeout": 10})
@bentoml.asgi_app(app, path="/")
class Recommender:
    """GET /api/v1/recommendations/{home,related,trending,category}, GET /api/v1/models,
    POST /api/v1/events/engagement, POST /api/v1/videos, GET /api/v1/metrics,
    GET /api/v1/openapi.json (BentoML's own /docs.json, /livez, /readyz, /metrics stay)."""

    if CFG.serving.retrieval_mode == "remote":  # see vidrec.backends.remote
        retrieval = bentoml.depends(Retrieval, url=CFG.serving.retrieval_url)

    def __init__(self) -> None:
        remote = RemoteRetrieval(self.retrieval.to_async) if hasattr(self, "retrieval") else None
        app.state.api = build_api(CFG, retrieval=remote)

    @bentoml.on_startup
    async def warm(self) -> None:
        """/readyz answers only after this: the first real feed finds every model warm."""
        await warm_up(app.state.api, CFG.serving)
