"""Faults injected into the real stack under real Locust load (short versions of `make chaos`).

One full stack for the module (Redis Cluster, Triton, BentoML services, gRPC, event processor,
lake writer, Prometheus); each scenario runs Locust for a few seconds, injects its fault,
undoes it, and must: lose no accepted event (every 202'd event applied by the processor and
in the lake), stay within its 5xx budget, and be healthy again before the load ends.
Scenarios run in order on the same stack; the settle step before each waits for the previous
one's damage to clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from tests.integration.settings import SLOW_MACHINE
from tests.integration.test_loadtest import running_stack
from vidrec_dev.loadtest.chaos import SCENARIOS, Outcome, Timing, run_chaos
from vidrec_dev.loadtest.stack import LoadStack
from vidrec_dev.loadtest.workload import from_artefacts

pytestmark = pytest.mark.integration
TIMING = Timing(duration_s=19.0, fault_at_s=3.0, undo_at_s=7.0)  # 12 s to recover
DRAIN_S = 30.0  # accepted events applied and in the lake within this
USERS = 3


@pytest.fixture(scope="module")
def stack(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadStack]:
    with running_stack(artefacts, tmp_path_factory.mktemp("chaos-stack"), None, SLOW_MACHINE) as s:
        yield s


@pytest.fixture(scope="module")
def workload(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return from_artefacts(artefacts).save(tmp_path_factory.mktemp("chaos-workload") / "w.json")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_loses_no_event_and_stays_within_its_5xx_budget(
    scenario: str, stack: LoadStack, workload: Path, tmp_path: Path
) -> None:
    (outcome,) = run_chaos(
        stack,
        tmp_path,
        [scenario],
        users=USERS,
        overload_users=2 * USERS,
        overload_think_ms=300.0,
        timing=TIMING,
        think_ms=300.0,
        users_file=workload,
        console=Console(stderr=True),
        drain_timeout_s=DRAIN_S,
    )
    describe(outcome)
    assert outcome.requests > 0
    assert outcome.events.accepted > 0, "no event was posted: the check would be vacuous"
    assert outcome.within_budget, (outcome.server_error_rate, outcome.server_error_budget)
    assert outcome.recovered, "not healthy again before the load ended"
    assert (tmp_path / f"chaos-{scenario}.png").stat().st_size > 0
    assert outcome.events_lost == 0, outcome.events
    assert outcome.events.lake_rows == outcome.events.accepted  # each exactly once


def describe(o: Outcome) -> None:
    print(
        f"{o.scenario}: {o.requests} requests, errors {o.error_rate:.2%}, 5xx "
        f"{o.server_error_rate:.2%}, degraded in fault {o.degraded_rate_fault:.0%}, "
        f"p99 {o.p99_ms:.0f} ms, recovery {o.recovery_s} s, events {o.events}"
    )
