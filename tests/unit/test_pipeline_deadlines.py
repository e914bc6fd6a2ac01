"""Deadlines and circuit breakers come from ServingConfig alone: a budget per stage kind, an
override per stage id, a breaker per dependency — and no stage carries a deadline of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import pkgutil

import pytest

import vidrec.pipeline
from vidrec.config import ServingConfig, load_config
from vidrec.pipeline import NullObserver, PipelineRunner, Policy, RequestContext, Surface
from vidrec.pipeline.candidates import Candidates, Retrieved
from vidrec.pipeline.mixers.take import Take
from vidrec.pipeline.resilience import CircuitBreaker


class Slow:
    """A source that answers after ``delay_s`` with one video."""

    policy = Policy.OPEN

    def __init__(self, name: str, delay_s: float) -> None:
        self.name, self.delay_s = name, delay_s

    async def __call__(self, ctx: RequestContext) -> Candidates:
        await asyncio.sleep(self.delay_s)
        return Candidates.from_retrieved(Retrieved.of([7], [1.0], [1], [1], [0]), self.name)


class Nothing:
    name = "nothing"
    policy = Policy.OPEN

    async def __call__(self, ctx: RequestContext) -> Candidates:
        return Candidates.empty()


def served(cfg: ServingConfig, *sources: Slow) -> RequestContext:
    surface = Surface(name="t", context=None, sources=sources, mixers=(Take(),),
                      fallback=Nothing())  # fmt: skip
    ctx = RequestContext("r", "t", "stable", 0, 5)
    asyncio.run(PipelineRunner(NullObserver(), cfg).run(surface, ctx))
    return ctx


BASE = dataclasses.replace(ServingConfig(), deadline_total_ms=5000, deadline_sources_ms=20)


def test_the_kind_budget_applies_to_a_stage_without_an_override() -> None:
    degraded = served(BASE, Slow("slow", 0.2), Slow("quick", 0.0)).degraded
    assert degraded == ["source/slow:timeout"]


def test_a_stage_override_replaces_its_kind_budget_for_that_stage_only() -> None:
    cfg = dataclasses.replace(BASE, stage_deadlines_ms=("source/slow=2000",))
    assert served(cfg, Slow("slow", 0.2), Slow("other", 0.2)).degraded == ["source/other:timeout"]
    tight = dataclasses.replace(BASE, deadline_sources_ms=2000,
                                stage_deadlines_ms=("source/slow=5",))  # fmt: skip
    assert served(tight, Slow("slow", 0.2), Slow("other", 0.01)).degraded == ["source/slow:timeout"]


def test_overrides_come_from_the_environment_and_a_bad_one_names_the_field() -> None:
    env = {"VIDREC_SERVING__STAGE_DEADLINES_MS": "scorer/triton_ranker=60, source/fresh=12"}
    assert load_config(env).serving.stage_deadline_ms() == {
        "scorer/triton_ranker": 60,
        "source/fresh": 12,
    }
    bad = dataclasses.replace(BASE, stage_deadlines_ms=("triton_ranker=60",))
    with pytest.raises(ValueError, match=r"serving\.stage_deadlines_ms.*triton_ranker=60"):
        PipelineRunner(NullObserver(), bad)


def test_breakers_per_dependency_default_to_the_shared_setting() -> None:
    cfg = load_config({"VIDREC_SERVING__BREAKERS": "ranker=3/2.5",
                       "VIDREC_SERVING__BREAKER_FAILURES": "7"}).serving  # fmt: skip
    ranker, features = CircuitBreaker.of(cfg, "ranker"), CircuitBreaker.of(cfg, "features")
    assert (ranker.failures, ranker.reset_s) == (3, 2.5)
    assert (features.failures, features.reset_s) == (7, cfg.breaker_reset_s)
    with pytest.raises(ValueError, match=r"serving\.breakers.*ranker=three"):
        dataclasses.replace(cfg, breakers=("ranker=three",)).breaker("ranker")


def test_no_stage_class_carries_a_deadline_of_its_own() -> None:
    carrying = []
    for info in pkgutil.walk_packages(vidrec.pipeline.__path__, "vidrec.pipeline."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            own = inspect.isclass(obj) and obj.__module__ == module.__name__
            if own and "deadline_ms" in vars(obj):
                carrying.append(f"{module.__name__}.{name}")
    assert not carrying, carrying
