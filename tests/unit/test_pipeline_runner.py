"""PipelineRunner: union/dedupe, deadlines, policies, fallback, bugs, effects, observations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from vidrec.config import ServingConfig
from vidrec.pipeline.base import Candidate, DependencyError, FilterResult, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.fallbacks import PopularList
from vidrec.pipeline.observer import RecordingObserver
from vidrec.pipeline.runner import PipelineRunner, Surface

from .pipeline_fakes import Catalogue, Faults, InMemoryRetrieval

CFG = replace(
    ServingConfig(),
    deadline_total_ms=3000,
    deadline_sources_ms=1000,
    deadline_filters_ms=1000,
    deadline_hydrate_ms=1000,
    deadline_score_ms=1000,
    deadline_mix_ms=1000,
)  # generous: only the stages' own deadlines matter here (2 shared cores)


class ListSource:
    policy = Policy.OPEN
    deadline_ms = 1000

    def __init__(self, name: str, items: list[tuple[int, float]], delay_s: float = 0.0) -> None:
        self.name, self.items, self.delay_s = name, items, delay_s

    async def __call__(self, ctx: RequestContext) -> Candidates:
        await asyncio.sleep(self.delay_s)
        return Candidates.from_list(
            [
                Candidate(video_id=v, source=self.name, retrieval_score=s, creator_id=v)
                for v, s in self.items
            ]
        )


class Failing:
    """A stage of any candidate kind that fails with a reason, sleeps, or has a bug."""

    deadline_ms = 30

    def __init__(self, name: str, policy: Policy, fault: str = "unavailable") -> None:
        self.name, self.policy, self.fault = name, policy, fault

    async def __call__(self, ctx: RequestContext, cands: Candidates | None = None) -> Candidates:
        if self.fault == "slow":
            await asyncio.sleep(1.0)
        if self.fault == "bug":
            raise KeyError("bug")
        raise DependencyError(self.fault)


class DropOdd:
    name = "drop_odd"
    policy = Policy.CLOSED
    deadline_ms = 5

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult:
        return FilterResult.partition(cands, cands.video_id % 2 == 1)


class SlowSink:
    name = "slow_log"
    policy = Policy.OPEN
    deadline_ms = 500

    def __init__(self, fault: str | None = None) -> None:
        self.fault, self.done = fault, asyncio.Event()

    async def __call__(self, ctx: RequestContext, served: Sequence[Candidate]) -> None:
        await asyncio.sleep(0.05)
        self.done.set()
        if self.fault:
            raise DependencyError(self.fault)


def popular() -> PopularList:
    return PopularList(InMemoryRetrieval(Catalogue(n=60)), refresh_s=60)


def surface(**kw: object) -> Surface:
    base: dict[str, object] = dict(
        name="t",
        context=None,
        sources=(
            ListSource("a", [(1, 0.9), (2, 0.5), (3, 0.4)]),
            ListSource("b", [(2, 0.8), (4, 0.7)], delay_s=0.02),
        ),
        fallback=popular(),
    )
    base.update(kw)
    return Surface(**base)  # type: ignore[arg-type]


def ctx(count: int = 10) -> RequestContext:
    return RequestContext("req", "t", "stable", 1_760_000_000_000, count)


def go(
    s: Surface, c: RequestContext, cfg: ServingConfig = CFG
) -> tuple[list[Candidate], RecordingObserver]:
    obs = RecordingObserver()

    async def main() -> list[Candidate]:
        runner = PipelineRunner(obs, cfg)
        out = await runner.run(s, c)
        await runner.drain()
        return out

    return asyncio.run(main()), obs


def test_sources_run_in_parallel_and_union_keeps_the_best_score() -> None:
    slow = (ListSource("a", [(1, 0.9)], delay_s=0.15), ListSource("b", [(2, 0.8)], delay_s=0.15))
    out, obs = go(surface(), ctx())
    assert [(c.video_id, c.source) for c in out] == [(1, "a"), (2, "b"), (4, "b"), (3, "a")]
    assert obs.count("pipeline/union", "out") == 4
    assert obs.count("source/b", "out") == 2
    start = time.perf_counter()
    out2, obs2 = go(surface(sources=slow), ctx())
    assert len(out2) == 2 and obs2.outcomes("source/a") == obs2.outcomes("source/b") == ["ok"]
    assert time.perf_counter() - start < 0.29  # each took 0.15 s: they overlapped


def test_union_is_capped_at_max_candidates() -> None:
    many = ListSource("a", [(i, float(i)) for i in range(50)])
    out, _ = go(surface(sources=(many,)), ctx(count=100), replace(CFG, max_candidates=7))
    assert [c.video_id for c in out] == [49, 48, 47, 46, 45, 44, 43]


def test_deadline_exceeded_in_open_stage_degrades_and_passes_through() -> None:
    c = ctx()
    out, obs = go(surface(hydrators=(Failing("slow_h", Policy.OPEN, "slow"),)), c)
    assert [x.video_id for x in out] == [1, 2, 4, 3]
    assert c.degraded == ["hydrator/slow_h:timeout"]
    assert obs.degradations == [("t", "hydrator/slow_h", "timeout")]
    assert obs.outcomes("hydrator/slow_h") == ["timeout"]


def test_kind_budget_from_config_sets_the_stage_deadline() -> None:
    slow = ListSource("late", [(9, 1.0)], delay_s=1.0)  # class default 1000 ms, config 250 ms
    c = ctx()
    out, _ = go(
        surface(sources=(*surface().sources, slow)), c, replace(CFG, deadline_sources_ms=250)
    )
    assert 9 not in [x.video_id for x in out] and c.degraded == ["source/late:timeout"]


def test_failed_source_is_skipped_and_all_failed_serves_fallback() -> None:
    c = ctx()
    out, _ = go(surface(sources=(*surface().sources, Failing("down", Policy.OPEN))), c)
    assert len(out) == 4 and c.degraded == ["source/down:unavailable"]
    c2 = ctx(count=5)
    out2, _ = go(surface(sources=(Failing("down", Policy.OPEN),)), c2)
    assert [x.source for x in out2] == ["popular"] * 5
    assert c2.degraded == ["source/down:unavailable", "source/all:no_data"]


def test_closed_filter_failure_serves_fallback_through_working_filters() -> None:
    c = ctx(count=6)
    out, obs = go(surface(filters=(DropOdd(), Failing("safety", Policy.CLOSED))), c)
    assert c.degraded == ["filter/safety:unavailable"]
    assert out and all(x.source == "popular" and x.video_id % 2 == 0 for x in out)
    assert obs.outcomes("fallback/popular") == ["ok"]


def test_scorer_failure_falls_back_to_retrieval_order() -> None:
    c = ctx()
    out, _ = go(surface(scorers=(Failing("ranker", Policy.OPEN, "circuit_open"),)), c)
    # retrieval order interleaves sources: a's best (1), b's best (2 — b scored it higher),
    # a's second (3), b's second (4)
    assert [x.video_id for x in out] == [1, 2, 3, 4]
    assert all(-1 < x.score < 0 for x in out)
    assert c.degraded == ["scorer/ranker:circuit_open"]


def test_a_bug_propagates() -> None:
    with pytest.raises(KeyError):
        go(surface(mixers=(Failing("broken", Policy.OPEN, "bug"),)), ctx())


def test_effects_do_not_block_and_their_errors_are_observed() -> None:
    sink = SlowSink(fault="unavailable")
    obs = RecordingObserver()

    async def main() -> tuple[bool, list[Candidate]]:
        runner = PipelineRunner(obs, CFG)
        out = await runner.run(surface(effects=(sink,)), ctx())
        returned_before_effect = not sink.done.is_set()
        await runner.drain()
        return returned_before_effect, out

    early, out = asyncio.run(main())
    assert early and len(out) == 4
    assert obs.outcomes("effect/slow_log") == ["unavailable"]
    assert obs.degradations == []  # the response itself was not degraded


def test_fallback_never_loaded_is_empty_with_reason() -> None:
    retrieval = InMemoryRetrieval(Catalogue(n=30), faults={"popular": Faults(error="unavailable")})
    c = ctx()
    out, _ = go(surface(sources=(), fallback=PopularList(retrieval)), c)
    assert out == [] and c.degraded == ["source/all:no_data", "fallback/popular:no_data"]


def test_popular_list_serves_the_cached_copy_while_retrieval_is_down() -> None:
    now = [0.0]
    retrieval = InMemoryRetrieval(Catalogue(n=30))
    fb = PopularList(retrieval, refresh_s=10, clock=lambda: now[0])
    first = asyncio.run(fb(ctx()))
    retrieval.faults["popular"] = Faults(error="timeout")
    now[0] = 11.0
    again = asyncio.run(fb(ctx()))
    assert [c.video_id for c in again] == [c.video_id for c in first] and len(first) == 30
    assert retrieval.faults["popular"].calls == 1
