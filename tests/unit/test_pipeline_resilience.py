"""CircuitBreaker state machine, driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.resilience import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Dep:
    """A dependency whose behaviour the test switches; counts the calls that reach it."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: BaseException | None = None
        self.delay = 0.0

    async def __call__(self) -> str:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return "ok"


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _fail_n(cb: CircuitBreaker, dep: Dep, n: int) -> list[str]:
    reasons = []
    for _ in range(n):
        with pytest.raises(DependencyError) as info:
            await cb.call(dep, 1.0)
        reasons.append(info.value.reason)
    return reasons


def test_opens_after_n_consecutive_failures_and_stops_calling() -> None:
    clock, dep = FakeClock(), Dep()
    cb = CircuitBreaker(3, 5.0, clock=clock)
    dep.fail = ConnectionRefusedError("down")

    async def go() -> None:
        assert await _fail_n(cb, dep, 3) == ["unavailable"] * 3
        assert cb.state is BreakerState.OPEN
        assert await _fail_n(cb, dep, 2) == ["circuit_open"] * 2

    run(go())
    assert dep.calls == 3  # the open circuit never reached the dependency


def test_success_resets_the_consecutive_count() -> None:
    clock, dep = FakeClock(), Dep()
    cb = CircuitBreaker(2, 5.0, clock=clock)

    async def go() -> None:
        dep.fail = OSError("x")
        await _fail_n(cb, dep, 1)
        dep.fail = None
        assert await cb.call(dep, 1.0) == "ok"
        dep.fail = OSError("x")
        await _fail_n(cb, dep, 1)
        assert cb.state is BreakerState.CLOSED

    run(go())


def test_half_open_trial_closes_on_success_and_reopens_on_failure() -> None:
    clock, dep = FakeClock(), Dep()
    cb = CircuitBreaker(1, 5.0, clock=clock)

    async def go() -> None:
        dep.fail = OSError("x")
        await _fail_n(cb, dep, 1)
        clock.t += 4.9
        assert cb.state is BreakerState.OPEN
        clock.t += 0.2
        assert cb.state is BreakerState.HALF_OPEN
        assert await _fail_n(cb, dep, 1) == ["unavailable"]  # the trial failed: open again
        assert cb.state is BreakerState.OPEN
        clock.t += 5.0
        dep.fail = None
        assert await cb.call(dep, 1.0) == "ok"
        assert cb.state is BreakerState.CLOSED

    run(go())
    assert dep.calls == 3


def test_half_open_allows_exactly_one_concurrent_trial() -> None:
    clock, dep = FakeClock(), Dep()
    cb = CircuitBreaker(1, 1.0, clock=clock)

    async def go() -> tuple[object, object]:
        dep.fail = OSError("x")
        await _fail_n(cb, dep, 1)
        clock.t += 1.0
        dep.fail, dep.delay = None, 0.01
        return await asyncio.gather(cb.call(dep, 1.0), cb.call(dep, 1.0), return_exceptions=True)

    results = run(go())
    assert results[0] == "ok"
    assert isinstance(results[1], DependencyError) and results[1].reason == "circuit_open"


def test_timeout_maps_to_timeout_reason() -> None:
    dep = Dep()
    dep.delay = 0.5
    cb = CircuitBreaker(5, 1.0)

    async def go() -> None:
        with pytest.raises(DependencyError) as info:
            await cb.call(dep, 0.01)
        assert info.value.reason == "timeout"

    run(go())


def test_bug_propagates_and_is_not_counted() -> None:
    dep = Dep()
    dep.fail = TypeError("bug")
    cb = CircuitBreaker(1, 1.0, clock=FakeClock())

    async def go() -> None:
        with pytest.raises(TypeError):
            await cb.call(dep, 1.0)

    run(go())
    assert cb.state is BreakerState.CLOSED


def test_dependency_error_from_inner_call_keeps_its_reason() -> None:
    dep = Dep()
    dep.fail = DependencyError("no_data")
    cb = CircuitBreaker(1, 1.0, clock=FakeClock())

    async def go() -> None:
        assert await _fail_n(cb, dep, 1) == ["no_data"]

    run(go())
    assert cb.state is BreakerState.OPEN


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="failures"):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError, match="reset_s"):
        CircuitBreaker(1, -1.0)
