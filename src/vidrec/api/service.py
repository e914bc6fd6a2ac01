"""RecommendationService: one request in, one response out, the same for HTTP and gRPC.

It authorises the caller for the query's user (:func:`~vidrec.api.errors.authorise`: an
end-user JWT reads only its own feeds), turns a validated query into a
:class:`RequestContext` (request id, sticky variant), runs the surface through the pipeline
runner, and converts the served candidates into ``schema.py`` items. It is also the outermost
safety net: in production an unexpected exception (a bug) serves the surface's fallback with
reason ``bug`` and is counted, because a degraded list beats an error page;
``raise_bugs=True`` (tests) re-raises instead.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from vidrec.api.errors import ApiError, authorise
from vidrec.contracts.routing import UNATTRIBUTED, RoutingTable, assign_variant
from vidrec.pipeline.base import Candidate, RequestContext, UnknownVideo
from vidrec.pipeline.runner import Surface
from vidrec.schema import (
    RANKER_HEADS,
    CategoryQuery,
    HomeQuery,
    RecommendationResponse,
    RecommendedItem,
    RelatedQuery,
    TrendingQuery,
)
from vidrec.security.auth import Principal

log = logging.getLogger(__name__)

Query = HomeQuery | RelatedQuery | TrendingQuery | CategoryQuery


BUG_STAGE = "service/outermost"


class SurfaceRunner(Protocol):
    """What the service needs from :class:`~vidrec.pipeline.runner.PipelineRunner`."""

    async def run(self, surface: Surface, ctx: RequestContext) -> list[Candidate]: ...

    async def fallback(self, surface: Surface, ctx: RequestContext) -> list[Candidate]: ...


class BugObserver(Protocol):
    def degraded(self, surface: str, stage_id: str, reason: str) -> None: ...


def to_items(cands: Sequence[Candidate]) -> list[RecommendedItem]:
    """Served candidates → API items; per-head scores only for ranked candidates."""
    return [
        RecommendedItem(
            video_id=c.video_id,
            score=float(c.score),
            scores=(
                {}
                if c.head_scores is None
                else dict(zip(RANKER_HEADS, c.head_scores.tolist(), strict=True))
            ),
            source=c.source,
            explanation=c.explanation,
        )
        for c in cands
    ]


class RecommendationService:
    """The four surfaces plus model info, over an injected runner, surfaces and routing."""

    def __init__(
        self,
        runner: SurfaceRunner,
        surfaces: Mapping[str, Surface],
        routing: Callable[[], Awaitable[RoutingTable]],
        clock: Callable[[], float] = time.time,
        *,
        salt: str,
        observer: BugObserver | None = None,
        models: Callable[[], dict[str, Any]] = dict,
        raise_bugs: bool = False,
    ) -> None:
        self.runner = runner
        self.surfaces = surfaces
        self.routing = routing
        self.clock = clock
        self.salt = salt
        self.observer = observer
        self._models = models
        self.raise_bugs = raise_bugs

    async def home(self, q: HomeQuery) -> RecommendationResponse:
        ctx = await self._context("home", q.count, q.user_id, user_id=q.user_id, region=q.region,
                            session_id=q.session_id, interests=q.interests)  # fmt: skip
        return await self._serve(ctx)

    async def related(self, q: RelatedQuery) -> RecommendationResponse:
        ctx = await self._context("related", q.count, q.user_id, user_id=q.user_id,
                            anchor_video_id=q.video_id)  # fmt: skip
        return await self._serve(ctx)

    async def trending(self, q: TrendingQuery) -> RecommendationResponse:
        ctx = await self._context(
            "trending", q.count, q.user_id, user_id=q.user_id, region=q.region
        )
        return await self._serve(ctx)

    async def category(self, q: CategoryQuery) -> RecommendationResponse:
        ctx = await self._context("category", q.count, q.user_id, user_id=q.user_id,
                            category=q.category)  # fmt: skip
        return await self._serve(ctx)

    async def recommend(self, q: Query, principal: Principal) -> RecommendationResponse:
        """The entry point of both transports: authorise ``principal`` for the query's user
        (403 naming ``user_id``), then dispatch on the query type."""
        authorise(principal, q.user_id, "user_id")
        if isinstance(q, HomeQuery):
            return await self.home(q)
        if isinstance(q, RelatedQuery):
            return await self.related(q)
        if isinstance(q, TrendingQuery):
            return await self.trending(q)
        return await self.category(q)

    def models(self) -> dict[str, Any]:
        """Loaded model versions, their manifests and offline metrics."""
        return self._models()

    async def _context(
        self, surface: str, count: int, sticky_key: int | None, **fields: Any
    ) -> RequestContext:
        request_id = uuid.uuid4().hex
        # Sticky per user; anonymous requests spread by weight (their key is the request).
        key: int | str = sticky_key if sticky_key is not None else request_id
        table = await self.routing()
        # Under an upstream split the ranker's answer names the variant (TritonRankerScorer).
        variant = UNATTRIBUTED if table.upstream else assign_variant(key, table, self.salt).name
        now_ms = int(self.clock() * 1000)
        return RequestContext(request_id, surface, variant, now_ms, count, **fields)

    async def _serve(self, ctx: RequestContext) -> RecommendationResponse:
        surface = self.surfaces[ctx.surface]
        try:
            served = await self.runner.run(surface, ctx)
        except UnknownVideo as exc:  # the client's error, not a bug: a 404, no fallback page
            raise ApiError(404, "not_found", "video_id", str(exc)) from None
        except Exception:
            if self.raise_bugs:
                raise
            served = await self._bug_fallback(surface, ctx)
        return RecommendationResponse(
            request_id=ctx.request_id,
            surface=ctx.surface,
            variant=ctx.variant,
            items=to_items(served[: ctx.count]),
            degraded=bool(ctx.degraded),
            degraded_reasons=list(ctx.degraded),
        )

    async def _bug_fallback(self, surface: Surface, ctx: RequestContext) -> list[Candidate]:
        """The surface's fallback list after a bug, still through its safety filters; if even
        that fails, an empty list."""
        log.exception("bug serving %s (request %s): fallback served", ctx.surface, ctx.request_id)
        ctx.degraded.append(f"{BUG_STAGE}:bug")
        if self.observer is not None:
            self.observer.degraded(ctx.surface, BUG_STAGE, "bug")
        try:
            return await self.runner.fallback(surface, ctx)
        except Exception:
            log.exception("fallback of %s failed too (request %s)", ctx.surface, ctx.request_id)
            ctx.degraded.append(f"fallback/{surface.fallback.name}:error")
            return []
