"""Tests per marker, collected and passed: what a CI run really exercised.

A pytest plugin (loaded by ``tests/conftest.py``): with ``VIDREC_TEST_COUNTS=DIR`` set, each
pytest process writes ``DIR/counts-<pid>.json`` (``make test`` runs two: the main suite and
the kserve SDK tests). ``python -m tests.marker_counts DIR`` sums them into a table and exits
1 when a tier was collected but none of it passed, e.g. integration tests that all skipped.

Tiers: ``unit`` (no ``integration`` marker), ``integration``, ``slow``.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

ENV = "VIDREC_TEST_COUNTS"
TIERS = ("unit", "integration", "slow")
OUTCOMES = ("passed", "failed", "skipped")
_RANK = {"passed": 0, "skipped": 1, "failed": 2}
_tiers: dict[str, tuple[str, ...]] = {}
_outcomes: dict[str, str] = {}


def tiers_of(item: pytest.Item) -> tuple[str, ...]:
    integration = item.get_closest_marker("integration") is not None
    slow = ("slow",) if item.get_closest_marker("slow") is not None else ()
    return ("integration" if integration else "unit", *slow)


def pytest_collection_finish(session: pytest.Session) -> None:
    _tiers.update({item.nodeid: tiers_of(item) for item in session.items})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # One test reports up to three phases; any failure wins, then a skip, then a pass.
    outcome = "skipped" if hasattr(report, "wasxfail") else report.outcome
    before = _outcomes.get(report.nodeid, "passed")
    _outcomes[report.nodeid] = max(before, outcome, key=_RANK.__getitem__)


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = os.environ.get(ENV)
    if not out or not _tiers:
        return
    counts = {tier: dict.fromkeys(("collected", *OUTCOMES), 0) for tier in TIERS}
    for nodeid, tiers in _tiers.items():
        for tier in tiers:
            counts[tier]["collected"] += 1
            if nodeid in _outcomes:
                counts[tier][_outcomes[nodeid]] += 1
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"counts-{os.getpid()}.json").write_text(json.dumps(counts))


def summarise(directory: Path) -> dict[str, Counter[str]]:
    total: dict[str, Counter[str]] = {tier: Counter() for tier in TIERS}
    for file in sorted(directory.glob("counts-*.json")):
        for tier, counts in json.loads(file.read_text()).items():
            total.setdefault(tier, Counter()).update(counts)
    return total


def main(argv: list[str]) -> int:
    total = summarise(Path(argv[0]))
    print(f"{'marker':<12} {'collected':>9} {'passed':>7} {'failed':>7} {'skipped':>8}")
    empty = []
    for tier, c in total.items():
        print(f"{tier:<12} {c['collected']:>9} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
        if c["collected"] and not c["passed"]:
            empty.append(tier)
    if not any(c["collected"] for c in total.values()):
        print("error: no test counts were written", file=sys.stderr)
        return 1
    if empty:
        print(f"error: collected but none passed: {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
