"""A circuit breaker: stop calling a dependency that keeps failing, so requests degrade fast.

Clients wrap each I/O call in :meth:`CircuitBreaker.call`, which also maps transport errors to
:class:`~vidrec.pipeline.base.DependencyError` reasons the runner's policies understand. Only
dependency faults count as failures; any other exception is a bug and propagates untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from vidrec.config import ServingConfig
from vidrec.pipeline.base import DependencyError

T = TypeVar("T")


async def within(aw: Awaitable[T], timeout_s: float) -> T:
    """``await aw`` under a deadline (TimeoutError when it passes). ``asyncio.timeout`` runs
    ``aw`` in the caller's task; ``wait_for`` wrapped each of the ~20 stage and client calls
    of a request in a task of its own."""
    async with asyncio.timeout(timeout_s):
        return await aw


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def as_dependency_error(exc: BaseException) -> DependencyError | None:
    """The policy-level reason for a transport fault, or None if ``exc`` is not one (a bug)."""
    if isinstance(exc, DependencyError):
        return exc
    # TimeoutError subclasses OSError since 3.11, so it must be checked first.
    if isinstance(exc, TimeoutError):
        return DependencyError("timeout", str(exc))
    if isinstance(exc, ConnectionError | OSError):
        return DependencyError("unavailable", f"{type(exc).__name__}: {exc}")
    return None


class CircuitBreaker:
    """closed → open after ``failures`` consecutive failures → half-open after ``reset_s``
    (exactly one trial call; others are refused) → closed on success, open again on failure."""

    def __init__(
        self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        if reset_s < 0:
            raise ValueError(f"reset_s must be >= 0, got {reset_s}")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @classmethod
    def of(cls, cfg: ServingConfig, dependency: str) -> CircuitBreaker:
        """The breaker ``cfg`` configures for ``dependency`` (``ServingConfig.breaker``)."""
        return cls(*cfg.breaker(dependency))

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    async def call(self, fn: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """Run ``fn()`` under ``timeout_s``; raise DependencyError on a dependency fault."""
        state = self.state
        if state is BreakerState.OPEN or (
            state is BreakerState.HALF_OPEN and self._trial_in_flight
        ):
            raise DependencyError("circuit_open")
        trial = state is BreakerState.HALF_OPEN
        self._trial_in_flight = trial
        try:
            result = await within(fn(), timeout_s)
        except Exception as exc:
            dep = as_dependency_error(exc)
            if dep is None:
                raise  # a bug: not the dependency's fault, the breaker state is unchanged
            self._record_failure()
            if dep is exc:
                raise
            raise dep from exc
        finally:
            if trial:
                self._trial_in_flight = False
        self._consecutive = 0
        self._opened_at = None
        return result

    def _record_failure(self) -> None:
        self._consecutive += 1
        if self._opened_at is not None or self._consecutive >= self.failures:
            self._opened_at = self._clock()  # (re)open: a failed trial restarts the wait
