"""Runs a :class:`Surface`: deadlines, failure policies, observations, fallback, effects.

A surface is declarative (which stages, in which order); everything a stage should not care
about lives here. Each stage runs under its deadline (:func:`~.resilience.within`): the
``ServingConfig.deadline_*`` budget of its kind, or its own from
``ServingConfig.stage_deadlines_ms`` (operators tune every deadline in config, none in code).
A dependency fault
(:class:`DependencyError` or a timeout) in an OPEN stage skips it (input passes through, a
source yields nothing), in a CLOSED stage serves the fallback; either way ``ctx.degraded`` gets
``"<kind>/<name>:<reason>"``. Anything else propagates: a bug, or :class:`UnknownVideo`
(the request names a video that does not exist: the API's 404). Candidates travel as columns
(:class:`~vidrec.pipeline.candidates.Candidates`) and each stage returns a new frame; only the
served page becomes :class:`Candidate` objects. Effects run after the response is
returned and can only be observed, never raised.

Admission: at most ``ServingConfig.max_inflight`` requests run the pipeline at once per
process; the rest wait their turn, up to ``deadline_queue_ms``, before any stage deadline
starts. Interleaving every request on one event loop stretched each stage's wall time with
the others' CPU until the stage deadlines fired: under load, queueing at the door keeps the
answers whole; past the queue budget a request is shed to the fallback
(``pipeline/admission:overload``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Final, Protocol, TypeVar

from vidrec.config import ServingConfig
from vidrec.pipeline.base import (
    Candidate,
    ContextStage,
    DependencyError,
    Effect,
    Filter,
    Hydrator,
    Mixer,
    Policy,
    RequestContext,
    Scorer,
    Source,
    Stage,
    UnknownVideo,
)
from vidrec.pipeline.candidates import Candidates, dedupe_by_video
from vidrec.pipeline.observer import PipelineObserver
from vidrec.pipeline.resilience import as_dependency_error, within
from vidrec.pipeline.scorers.retrieval_order import RetrievalOrder

T = TypeVar("T")


class Fallback(Stage, Protocol):
    """What a surface serves when a CLOSED stage fails or no source returned anything."""

    async def __call__(self, ctx: RequestContext) -> Candidates: ...


@dataclass(frozen=True, kw_only=True)
class Surface:
    """One product surface, read top to bottom like the request.

    ``cold_start``: served instead (same request, same labels) when the user is unknown or
    anonymous. ``degraded_order``: applied when a scorer is skipped, so the list stays sortable.
    """

    name: str
    context: ContextStage | None
    sources: tuple[Source, ...]
    filters: tuple[Filter, ...] = ()  # cheapest first
    hydrators: tuple[Hydrator, ...] = ()
    scorers: tuple[Scorer, ...] = ()
    mixers: tuple[Mixer, ...] = ()
    effects: tuple[Effect, ...] = ()
    fallback: Fallback
    cold_start: Surface | None = None
    degraded_order: Scorer = field(default_factory=RetrievalOrder)


class _ServeFallback(Exception):
    """Internal: a CLOSED stage failed or nothing was retrieved."""


class _Skipped:
    """Internal sentinel: an OPEN stage was skipped."""


SKIPPED: Final = _Skipped()
ADMISSION: Final = "pipeline/admission"


def stage_id(kind: str, stage: Stage) -> str:
    return f"{kind}/{stage.name}"


def outcome(exc: Exception, dep: DependencyError | None) -> str:
    """A failed stage's metric label: the dependency's reason, ``not_found`` for a request
    about an unknown video (the client's error, propagated), else ``bug``."""
    if dep is not None:
        return dep.reason
    return "not_found" if isinstance(exc, UnknownVideo) else "bug"


class PipelineRunner:
    """Executes surfaces; one per process, shared by all requests."""

    def __init__(self, observer: PipelineObserver, cfg: ServingConfig) -> None:
        self._obs = observer
        self._cfg = cfg
        cfg.stage_deadline_ms()  # a bad override fails at startup, naming it
        if cfg.max_inflight < 0 or cfg.deadline_queue_ms < 1:
            raise ValueError(
                "serving.max_inflight must be >= 0 (0 = no limit) and serving.deadline_queue_ms"
                f" >= 1, got {cfg.max_inflight} and {cfg.deadline_queue_ms}"
            )
        self._door = asyncio.Semaphore(cfg.max_inflight) if cfg.max_inflight else None
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self, surface: Surface, ctx: RequestContext) -> list[Candidate]:
        """The final list (≤ ``ctx.count``); effects are scheduled, not awaited."""
        if ctx.count < 1:
            raise ValueError(f"count: must be >= 1, got {ctx.count}")
        if not await self._admitted(surface.name, ctx):
            self._degrade(surface.name, ctx, ADMISSION, "overload")
            frame = await self._fallback(surface, ctx)
        else:
            try:
                frame = await self._within_total(surface, ctx)
            finally:
                if self._door is not None:
                    self._door.release()
        served = frame.head(ctx.count).to_list()
        self._spawn_effects(surface, ctx, served)
        return served

    async def _admitted(self, label: str, ctx: RequestContext) -> bool:
        """Wait for a turn (no limit: at once); False when the queue budget ran out."""
        if self._door is None:
            return True
        start = perf_counter()
        try:
            await within(self._door.acquire(), self._cfg.deadline_queue_ms / 1000)
        except TimeoutError:
            self._obs.stage(label, ADMISSION, ctx.variant, perf_counter() - start, "overload")
            return False
        self._obs.stage(label, ADMISSION, ctx.variant, perf_counter() - start, "ok")
        return True

    async def _within_total(self, surface: Surface, ctx: RequestContext) -> Candidates:
        try:
            return await within(
                self._pipeline(surface, ctx, surface.name), self._cfg.deadline_total_ms / 1000
            )
        except _ServeFallback:
            return await self._fallback(surface, ctx)
        except TimeoutError:
            self._degrade(surface.name, ctx, "pipeline/total", "timeout")
            return await self._fallback(surface, ctx)

    async def drain(self) -> None:
        """Wait for scheduled effects (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    # -- the request, stage by stage --------------------------------------------------------

    async def _pipeline(self, surface: Surface, ctx: RequestContext, label: str) -> Candidates:
        context = surface.context
        if context is not None and ctx.user_id is not None and ctx.user is None:
            user = await self._guarded(label, ctx, "context", context, context, ctx)
            if not isinstance(user, _Skipped):
                ctx.user = user
        if surface.cold_start is not None and (ctx.user is None or not ctx.user.known):
            return await self._pipeline(surface.cold_start, ctx, label)

        cands = await self._sources(surface, ctx, label)
        for flt in surface.filters:
            sid = stage_id("filter", flt)
            result = await self._guarded(label, ctx, "filter", flt, flt, ctx, cands)
            if isinstance(result, _Skipped):
                continue
            self._obs.candidates(label, sid, "in", len(cands))
            self._obs.candidates(label, sid, "removed", len(result.removed))
            cands = result.kept
        for hyd in surface.hydrators:
            cands = await self._transform(label, ctx, "hydrator", hyd, cands)
        cands = await self._score(surface, ctx, label, cands)
        for mixer in surface.mixers:
            cands = await self._transform(label, ctx, "mixer", mixer, cands)
        return cands.head(ctx.count)

    async def _sources(self, surface: Surface, ctx: RequestContext, label: str) -> Candidates:
        results = await asyncio.gather(
            *(self._guarded(label, ctx, "source", src, src, ctx) for src in surface.sources),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:  # a bug wins over a fallback request; both stop the pipeline
            raise next((e for e in errors if not isinstance(e, _ServeFallback)), errors[0])
        found: list[Candidates] = []
        for src, result in zip(surface.sources, results, strict=True):
            if isinstance(result, Candidates):
                self._obs.candidates(label, stage_id("source", src), "out", len(result))
                found.append(result)
        merged = Candidates.concat(found)
        if not len(merged):
            self._degrade(label, ctx, "source/all", "no_data")
            raise _ServeFallback
        union = dedupe_by_video(merged).head(self._cfg.max_candidates)
        self._obs.candidates(label, "pipeline/union", "out", len(union))
        return union

    async def _score(
        self, surface: Surface, ctx: RequestContext, label: str, cands: Candidates
    ) -> Candidates:
        skipped = False
        for scorer in surface.scorers:
            result = await self._guarded(label, ctx, "scorer", scorer, scorer, ctx, cands)
            if isinstance(result, _Skipped):
                skipped = True
            else:
                cands = result
        if skipped:
            cands = await self._transform(label, ctx, "scorer", surface.degraded_order, cands)
        cands = cands.sorted_by_score()  # stable: ties keep order
        if cands.head_scores is not None and cands.ranked.any():
            self._obs.scores(label, ctx.variant, cands.head_scores[cands.ranked])
        return cands

    async def _transform(
        self, label: str, ctx: RequestContext, kind: str, stage: Any, cands: Candidates
    ) -> Candidates:
        result = await self._guarded(label, ctx, kind, stage, stage, ctx, cands)
        if isinstance(result, _Skipped):
            return cands
        self._obs.candidates(label, stage_id(kind, stage), "out", len(result))
        return result

    async def _guarded(
        self,
        label: str,
        ctx: RequestContext,
        kind: str,
        stage: Stage,
        call: Callable[..., Awaitable[T]],
        *args: Any,
    ) -> T | _Skipped:
        """Run one stage under its deadline and apply its policy to dependency faults."""
        sid = stage_id(kind, stage)
        start = perf_counter()
        try:
            result = await within(call(*args), self._deadline_s(sid))
        except Exception as exc:
            dep = as_dependency_error(exc)
            self._obs.stage(label, sid, ctx.variant, perf_counter() - start, outcome(exc, dep))
            if dep is None:
                raise
            self._degrade(label, ctx, sid, dep.reason)
            if stage.policy is Policy.CLOSED:
                raise _ServeFallback from exc
            return SKIPPED
        self._obs.stage(label, sid, ctx.variant, perf_counter() - start, "ok")
        return result

    def _deadline_s(self, sid: str) -> float:
        return self._cfg.deadline_ms(sid) / 1000

    def _degrade(self, label: str, ctx: RequestContext, sid: str, reason: str) -> None:
        ctx.degraded.append(f"{sid}:{reason}")
        self._obs.degraded(label, sid, reason)

    # -- after a failure, and after the response ---------------------------------------------

    async def fallback(self, surface: Surface, ctx: RequestContext) -> list[Candidate]:
        """The surface's fallback list, still passed through its filters where they work."""
        return (await self._fallback(surface, ctx)).head(ctx.count).to_list()

    async def _fallback(self, surface: Surface, ctx: RequestContext) -> Candidates:
        fb = surface.fallback
        found = await self._guarded(surface.name, ctx, "fallback", fb, fb, ctx)
        cands = Candidates.empty() if isinstance(found, _Skipped) else found
        for flt in surface.filters:
            deadline_s = self._deadline_s(stage_id("filter", flt))
            try:
                cands = (await within(flt(ctx, cands), deadline_s)).kept
            except Exception as exc:
                if as_dependency_error(exc) is None:
                    raise  # already reported as degraded above if it is a dependency fault
        return cands

    def _spawn_effects(
        self, surface: Surface, ctx: RequestContext, served: list[Candidate]
    ) -> None:
        if surface.effects:
            task = asyncio.create_task(self._effects(surface, ctx, tuple(served)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _effects(
        self, surface: Surface, ctx: RequestContext, served: tuple[Candidate, ...]
    ) -> None:
        for effect in surface.effects:
            sid = stage_id("effect", effect)
            start = perf_counter()
            outcome = "ok"
            try:
                await within(effect(ctx, served), self._deadline_s(sid))
            except Exception as exc:  # never raised: the response is already gone
                dep = as_dependency_error(exc)
                outcome = "bug" if dep is None else dep.reason
            self._obs.stage(surface.name, sid, ctx.variant, perf_counter() - start, outcome)


__all__ = ["SKIPPED", "DependencyError", "Fallback", "PipelineRunner", "Surface", "dedupe_by_video"]
