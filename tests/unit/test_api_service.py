"""RecommendationService: candidates → items, sticky variants, the outermost safety net."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from vidrec.api.service import BUG_STAGE, RecommendationService, to_items
from vidrec.config import ServingConfig
from vidrec.contracts.routing import RoutingTable, VariantRoute
from vidrec.pipeline.base import Candidate, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.observer import NullObserver, RecordingObserver
from vidrec.pipeline.runner import PipelineRunner, Surface
from vidrec.schema import HomeQuery, RelatedQuery, TrendingQuery
from vidrec.security.auth import ANONYMOUS

TABLE = RoutingTable((VariantRoute("stable", 50, 1), VariantRoute("canary", 50, 2)))


class Popular:
    name = "popular"
    policy = Policy.OPEN
    deadline_ms = 50

    async def __call__(self, ctx: RequestContext) -> Candidates:
        return Candidates.from_list(
            [Candidate(100 + i, "popular", 1.0 - i / 10, explanation="popular") for i in range(5)]
        )


class ListRunner(PipelineRunner):
    """Runs no stages: returns fixed candidates, or raises to play a bug; records contexts.
    Its fallback is the real runner's (fallback list through the surface's filters)."""

    def __init__(self, cands: list[Candidate] | None = None) -> None:
        super().__init__(NullObserver(), ServingConfig())
        self.cands = cands
        self.contexts: list[RequestContext] = []

    async def run(self, surface: Surface, ctx: RequestContext) -> list[Candidate]:
        self.contexts.append(ctx)
        if self.cands is None:
            raise TypeError("a bug")
        ctx.degraded.append("scorer/triton_ranker:timeout")
        return self.cands


def surface(name: str) -> Surface:
    return Surface(name=name, context=None, sources=(), fallback=Popular())


async def table() -> RoutingTable:
    return TABLE


def service(runner: ListRunner, **kw: Any) -> RecommendationService:
    surfaces = {n: surface(n) for n in ("home", "related", "trending", "category")}
    return RecommendationService(runner, surfaces, table, lambda: 1234.5, salt="s", **kw)


def test_to_items_keeps_heads_source_and_explanation() -> None:
    ranked = Candidate(7, "two_tower", 0.3, score=1.5, explanation="for you",
                       head_scores=np.array([0.25, 0.5, 0.125], dtype=np.float32))  # fmt: skip
    unranked = Candidate(8, "trending", 0.2, score=0.2, explanation="trending in north")
    items = to_items([ranked, unranked])
    assert items[0].scores == {"p_click": 0.25, "p_long_view": 0.5, "p_like": 0.125}
    assert (items[0].score, items[0].source, items[0].explanation) == (1.5, "two_tower", "for you")
    assert items[1].scores == {} and items[1].source == "trending"


def test_response_carries_context_variant_and_degradation() -> None:
    cands = [Candidate(i, "two_tower", 1.0, score=float(-i)) for i in range(30)]
    runner = ListRunner(cands)
    resp = asyncio.run(service(runner).home(HomeQuery(user_id=42, count=10, region="north")))
    ctx = runner.contexts[0]
    assert (ctx.user_id, ctx.region, ctx.count, ctx.now_ms, ctx.surface) == (
        42,
        "north",
        10,
        1234500,
        "home",
    )
    assert [it.video_id for it in resp.items] == list(range(10))
    assert resp.degraded and resp.degraded_reasons == ["scorer/triton_ranker:timeout"]
    assert resp.variant == ctx.variant and resp.request_id == ctx.request_id


def test_variant_is_sticky_per_user_and_spread_across_users() -> None:
    runner = ListRunner([])
    svc = service(runner)
    first = [asyncio.run(svc.home(HomeQuery(user_id=u))).variant for u in range(200)]
    again = [asyncio.run(svc.home(HomeQuery(user_id=u))).variant for u in range(200)]
    assert first == again
    assert 60 < first.count("canary") < 140
    ids = {c.request_id for c in runner.contexts}
    assert len(ids) == 400


def test_related_and_trending_fill_their_context_fields() -> None:
    runner = ListRunner([])
    svc = service(runner)
    asyncio.run(svc.recommend(RelatedQuery(video_id=5, user_id=1), ANONYMOUS))
    asyncio.run(svc.recommend(TrendingQuery(region="west"), ANONYMOUS))
    assert runner.contexts[0].anchor_video_id == 5 and runner.contexts[0].surface == "related"
    assert runner.contexts[1].region == "west" and runner.contexts[1].user_id is None


def test_bug_serves_fallback_with_reason_and_is_counted() -> None:
    obs = RecordingObserver()
    resp = asyncio.run(service(ListRunner(None), observer=obs).home(HomeQuery(user_id=1, count=3)))
    assert [it.video_id for it in resp.items] == [100, 101, 102]
    assert resp.degraded and resp.degraded_reasons == [f"{BUG_STAGE}:bug"]
    assert obs.degradations == [("home", BUG_STAGE, "bug")]


def test_bug_reraised_in_test_mode() -> None:
    with pytest.raises(TypeError, match="a bug"):
        asyncio.run(service(ListRunner(None), raise_bugs=True).home(HomeQuery(user_id=1)))
