"""Admission: at most ``max_inflight`` requests run the pipeline at once; the rest queue (their
stage deadlines not yet running) and are shed to the fallback when the queue budget runs out."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from vidrec.config import ServingConfig
from vidrec.pipeline import PipelineRunner, Policy, RecordingObserver, RequestContext, Surface
from vidrec.pipeline.candidates import Candidates, Retrieved
from vidrec.pipeline.mixers.take import Take


class Counting:
    """A source that takes ``delay_s`` of wall time and records how many ran at once."""

    name = "counting"
    policy = Policy.OPEN

    def __init__(self, delay_s: float) -> None:
        self.delay_s, self.running, self.most = delay_s, 0, 0

    async def __call__(self, ctx: RequestContext) -> Candidates:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.running -= 1
        return Candidates.from_retrieved(Retrieved.of([7], [1.0], [1], [1], [0]), self.name)


class Popular:
    name = "popular"
    policy = Policy.OPEN

    async def __call__(self, ctx: RequestContext) -> Candidates:
        return Candidates.from_retrieved(Retrieved.of([99], [0.5], [1], [1], [0]), self.name)


BASE = dataclasses.replace(ServingConfig(), deadline_total_ms=5000, deadline_sources_ms=1000)


def serve_together(
    cfg: ServingConfig, source: Counting, n: int
) -> list[tuple[RequestContext, list[int]]]:
    """``n`` requests at once: each one's context and the video ids served to it."""
    surface = Surface(name="t", context=None, sources=(source,), mixers=(Take(),),
                      fallback=Popular())  # fmt: skip
    ctxs = [RequestContext(f"r{i}", "t", "stable", 0, 5) for i in range(n)]
    obs = RecordingObserver()

    async def main() -> list[list[int]]:
        runner = PipelineRunner(obs, cfg)
        pages = await asyncio.gather(*(runner.run(surface, c) for c in ctxs))
        return [[c.video_id for c in page] for page in pages]

    pages = asyncio.run(main())
    assert len(obs.outcomes("pipeline/admission")) == (n if cfg.max_inflight else 0)
    return list(zip(ctxs, pages, strict=True))


def test_requests_beyond_the_limit_wait_their_turn_and_are_served_whole() -> None:
    source = Counting(0.05)  # 6 requests, 2 at a time: the last waits ~0.1 s > stage budget
    cfg = dataclasses.replace(BASE, max_inflight=2, deadline_queue_ms=2000,
                              deadline_sources_ms=80)  # fmt: skip
    served = serve_together(cfg, source, 6)
    assert source.most == 2
    assert all(ctx.degraded == [] and page == [7] for ctx, page in served)


def test_no_limit_runs_every_request_at_once() -> None:
    source = Counting(0.02)
    serve_together(dataclasses.replace(BASE, max_inflight=0), source, 5)
    assert source.most == 5


def test_a_request_queued_past_its_budget_is_shed_to_the_fallback() -> None:
    source = Counting(0.3)
    cfg = dataclasses.replace(BASE, max_inflight=1, deadline_queue_ms=20)
    (first, first_page), (second, second_page) = serve_together(cfg, source, 2)
    assert first.degraded == [] and first_page == [7]
    assert second.degraded == ["pipeline/admission:overload"] and second_page == [99]


@pytest.mark.parametrize("field,value", [("max_inflight", -1), ("deadline_queue_ms", 0)])
def test_a_bad_admission_setting_names_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"serving.{field}"):
        PipelineRunner(RecordingObserver(), dataclasses.replace(BASE, **{field: value}))
