"""Warm-up over the real home surface and in-memory clients: it retries a failing dependency
until the feed is clean, scores every variant, logs no impressions, and never blocks startup
for longer than its budget."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from vidrec.api import warmup
from vidrec.api.service import RecommendationService
from vidrec.config import RankingConfig
from vidrec.contracts.routing import RoutingTable, VariantRoute
from vidrec.pipeline import PipelineDeps, PipelineRunner, home_surface, trending_surface
from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.clients import RankerAnswer
from vidrec.pipeline.observer import NullObserver

from .pipeline_fakes import (
    NOW_MS,
    SMALL_SOURCES,
    Catalogue,
    InMemoryFeatures,
    InMemoryRetrieval,
    ListSink,
    MlpRanker,
    generous_config,
    make_user,
)

CFG = generous_config(**SMALL_SOURCES)
KNOWN_USER = 7
TWO_VARIANTS = RoutingTable((VariantRoute("stable", 90, 1), VariantRoute("canary", 10, 2)))


@dataclass
class ColdRanker(MlpRanker):
    """Times out on its first ``cold_calls`` calls, like a ranker nobody has called yet."""

    cold_calls: int = 0
    calls: int = 0
    variants: list[str] = field(default_factory=list)

    async def score(self, x: np.ndarray, variant: str) -> RankerAnswer:
        self.calls += 1
        if self.calls <= self.cold_calls:
            raise DependencyError("timeout", "cold")
        self.variants.append(variant)
        return await super().score(x, variant)


def world(ranker: ColdRanker, table: RoutingTable = TWO_VARIANTS) -> tuple[Any, ListSink]:
    cat = Catalogue(seed=0)
    retrieval = InMemoryRetrieval(cat)
    features = InMemoryFeatures(cat, users={KNOWN_USER: make_user(cat, KNOWN_USER, 0)})
    sink = ListSink()
    deps = PipelineDeps(retrieval, features, ranker, sink, RankingConfig().head_weights)
    surfaces = {"home": home_surface(deps, CFG), "trending": trending_surface(deps, CFG)}

    async def routing() -> RoutingTable:
        return table

    service = RecommendationService(
        PipelineRunner(NullObserver(), CFG), surfaces, routing, lambda: NOW_MS / 1000, salt="s"
    )
    return SimpleNamespace(service=service), sink


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "RETRY_S", 0.0)


def test_warm_up_retries_a_cold_ranker_until_the_home_feed_is_clean() -> None:
    ranker = ColdRanker(cold_calls=2)
    api, _ = world(ranker)
    report = asyncio.run(warmup.warm_up(api, CFG, budget_s=30))
    assert report.warm
    assert report.users == (KNOWN_USER,)  # the ids with features: the full path ran
    assert report.reasons == {"scorer/triton_ranker:timeout": 2}
    assert ranker.calls > 2


def test_every_variant_is_scored_and_no_impression_is_logged() -> None:
    ranker = ColdRanker()
    api, sink = world(ranker)
    report = asyncio.run(warmup.warm_up(api, CFG, budget_s=30))
    assert report.warm and report.variants == ("stable", "canary")
    assert {"stable", "canary"} <= set(ranker.variants)  # one model version each
    assert sink.logged == []  # warm-up requests are not served to anyone


def test_a_dependency_that_stays_down_ends_warm_up_not_startup() -> None:
    ranker = ColdRanker(cold_calls=10**9)
    api, _ = world(ranker)
    report = asyncio.run(warmup.warm_up(api, CFG, budget_s=0.5))
    assert not report.warm
    assert report.reasons["scorer/triton_ranker:timeout"] >= 1


def test_no_budget_means_no_warm_up() -> None:
    ranker = ColdRanker()
    api, _ = world(ranker)
    report = asyncio.run(warmup.warm_up(api, replace(CFG, warmup_s=0)))
    assert report.requests == 0 and ranker.calls == 0
