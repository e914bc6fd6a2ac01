"""Warm the serving process before it reports ready, so its first real request is not degraded.

Everything on the request path is slow the first time: the first Triton inference (the
python-backend stub's first ORT run, the gRPC channel), the first user-tower run, the first
FAISS search (thread pools), the first Redis connection to each node. With stage deadlines of
tens of milliseconds, the first home feed after ``make up`` came back degraded
(``scorer/triton_ranker:timeout``). :func:`warm_up` runs requests through the process's own
surfaces and clients — on the event loop that will serve (the Triton channel is bound to it)
— until every surface answers undegraded, one home feed per variant of the routing table (so
every served model version has had an inference), then a few at once (connection pools).

Warm-up is quiet and never fatal: no impressions are logged and no metrics recorded (effects
stripped, a null observer), and a dependency that stays down is logged and retried until the
budget runs out; then the process becomes ready anyway and serves degraded, as it would have.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vidrec.config import ServingConfig
from vidrec.pipeline.base import Candidate, RequestContext
from vidrec.pipeline.observer import NullObserver
from vidrec.pipeline.runner import PipelineRunner, Surface

if TYPE_CHECKING:
    from vidrec.api.http_app import Api

log = logging.getLogger(__name__)

USER_PROBES = 64  # user ids tried, from 0, for ones with features (the home feed's full path)
WARM_USERS = 8
ROUNDS = 2  # passes over the known users once every surface answered clean
RETRY_S = 0.5  # between attempts of a degraded request
CONCURRENT = 4  # home feeds at once in the last rounds: connection pools and worker threads
COUNT = 20
Served = tuple[RequestContext, list[Candidate]]


@dataclass
class WarmupReport:
    """What the warm-up did; ``warm`` is False when the budget ran out first."""

    warm: bool = False
    requests: int = 0
    seconds: float = 0.0
    users: tuple[int, ...] = ()  # known users whose feeds warmed the process
    variants: tuple[str, ...] = ()
    reasons: dict[str, int] = field(default_factory=dict)  # degradations seen, by reason

    def saw(self, reasons: Sequence[str]) -> None:
        for reason in reasons:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


def quiet(surface: Surface) -> Surface:
    """``surface`` without effects (the impression log), its cold-start surface too."""
    cold = None if surface.cold_start is None else quiet(surface.cold_start)
    return dataclasses.replace(surface, effects=(), cold_start=cold)


class Warmer:
    """Runs warm-up requests through ``api``'s surfaces with a runner of its own."""

    def __init__(self, api: Api, cfg: ServingConfig, budget_s: float) -> None:
        self.service = api.service
        self.cfg = cfg
        self.surfaces = {name: quiet(s) for name, s in api.service.surfaces.items()}
        self.runner = PipelineRunner(NullObserver(), cfg)
        self.deadline = time.monotonic() + budget_s
        self.report = WarmupReport()

    def _expired(self) -> bool:
        return time.monotonic() >= self.deadline

    async def once(self, surface: str, variant: str, **fields: Any) -> Served:
        ctx = RequestContext(
            f"warmup-{uuid.uuid4().hex}", surface, variant,
            int(self.service.clock() * 1000), COUNT, **fields,
        )  # fmt: skip
        served = await self.runner.run(self.surfaces[surface], ctx)
        self.report.requests += 1
        self.report.saw(ctx.degraded)
        return ctx, served

    async def until_clean(self, surface: str, variant: str, **fields: Any) -> Served:
        """Repeat the request until it is not degraded, or the budget is spent."""
        while True:
            ctx, served = await self.once(surface, variant, **fields)
            if not ctx.degraded or self._expired():
                return ctx, served
            log.info("warm-up: %s (%s) degraded: %s; retrying", surface, variant,
                     ", ".join(ctx.degraded))  # fmt: skip
            await asyncio.sleep(RETRY_S)

    async def known_users(self, variant: str) -> list[int]:
        """Up to :data:`WARM_USERS` ids with features, from 0: their feeds run every stage,
        and their contexts live on different Redis nodes."""
        found: list[int] = []
        for user_id in range(USER_PROBES):
            ctx, _ = await self.until_clean("home", variant, user_id=user_id)
            if ctx.user is not None and ctx.user.known:
                found.append(user_id)
            if len(found) == WARM_USERS or self._expired():
                break
        return found

    async def run(self) -> WarmupReport:
        start = time.monotonic()
        table = await self.service.routing()
        variants = tuple(v.name for v in table.variants)
        self.report.variants = variants
        users = await self.known_users(variants[0])
        self.report.users = tuple(users)
        lead = users[0] if users else None
        clean: list[bool] = []
        feed: list[Candidate] = []
        for variant in variants:  # one inference per served model version
            ctx, feed = await self.until_clean("home", variant, user_id=lead)
            clean.append(not ctx.degraded)
        if feed and "related" in self.surfaces:
            ctx, _ = await self.until_clean("related", variants[0], user_id=lead,
                                            anchor_video_id=feed[0].video_id)  # fmt: skip
            clean.append(not ctx.degraded)
        if "trending" in self.surfaces:
            ctx, _ = await self.until_clean("trending", variants[0], region=self.cfg.default_region)
            clean.append(not ctx.degraded)
        # One clean answer is not a warm process yet (the second ranker call still took twice
        # the steady time): every user again, a few at once (connection pools, worker threads).
        for _ in range(ROUNDS):
            for i in range(0, len(users), CONCURRENT):
                batch = users[i : i + CONCURRENT]
                await asyncio.gather(*(self.once("home", variants[0], user_id=u) for u in batch))
        self.report.warm = bool(users) and all(clean)
        self.report.seconds = time.monotonic() - start
        return self.report


async def warm_up(api: Api, cfg: ServingConfig, budget_s: float | None = None) -> WarmupReport:
    """Warm ``api``'s process (see the module doc); never raises for a dependency fault."""
    budget = cfg.warmup_s if budget_s is None else budget_s
    if budget <= 0:
        return WarmupReport()
    warmer = Warmer(api, cfg, budget)
    try:
        report = await warmer.run()
    except Exception:  # a failed warm-up must not keep the server from starting
        log.exception("warm-up failed after %d requests; serving cold", warmer.report.requests)
        return warmer.report
    if report.warm:
        log.info("warm-up: %d requests in %.1f s (users %s, variants %s)", report.requests,
                 report.seconds, report.users, ", ".join(report.variants))  # fmt: skip
    else:
        log.warning("warm-up: still degraded after %.1f s (%s); serving anyway",
                    report.seconds, report.reasons)  # fmt: skip
    return report
