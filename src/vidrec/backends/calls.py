"""Blocking client calls (redis-py) run from the event loop: bounded, timed, breaker-guarded.

The stores are synchronous, so each call runs in a worker thread. A semaphore bounds the
calls in flight (the Redis cluster client degrades badly with hundreds of them), the circuit
breaker stops calling a dependency that keeps failing, and Redis' own exception types are
mapped to the :class:`DependencyError` reasons the pipeline's policies understand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
from redis.exceptions import RedisClusterException

from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.resilience import CircuitBreaker

T = TypeVar("T")


def redis_dependency_error(exc: Exception) -> DependencyError | None:
    """The policy reason for a Redis client fault; None when ``exc`` is not one (a bug)."""
    if isinstance(exc, redis.TimeoutError):
        return DependencyError("timeout", f"redis: {exc}")
    if isinstance(exc, redis.ConnectionError | RedisClusterException | ConnectionError):
        return DependencyError("unavailable", f"redis: {type(exc).__name__}: {exc}")
    if isinstance(exc, redis.RedisError):
        return DependencyError("error", f"redis: {type(exc).__name__}: {exc}")
    return None


def _mapped(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Exception as exc:
        dep = redis_dependency_error(exc)
        if dep is None:
            raise
        raise dep from exc


class BlockingCalls:
    """Run ``fn()`` in a thread (or await an asyncio client's call: :meth:`run_async`), at
    most ``max_concurrency`` at once, under a breaker."""

    def __init__(self, breaker: CircuitBreaker, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.breaker = breaker
        self._slots = asyncio.Semaphore(max_concurrency)

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()``'s result; waiting for a slot counts towards ``timeout_s``."""

        async def attempt() -> T:
            async with self._slots:
                return await asyncio.to_thread(_mapped, fn)

        return await self.breaker.call(attempt, timeout_s)

    async def run_async(self, fn: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        """``await fn()`` on the loop, with the same bound, breaker and error mapping."""

        async def attempt() -> T:
            async with self._slots:
                try:
                    return await fn()
                except Exception as exc:
                    dep = redis_dependency_error(exc)
                    if dep is None:
                        raise
                    raise dep from exc

        return await self.breaker.call(attempt, timeout_s)
