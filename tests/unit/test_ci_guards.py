"""The CI guards: a missing server fails under CI instead of skipping, unit tests cannot start
servers, and the per-marker counts add up across pytest processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests import marker_counts, needs


def test_a_missing_binary_skips_locally_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(needs.REQUIRE_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"/nowhere/redis-server not installed \(apt"):
        needs.require_binary("/nowhere/redis-server", "apt-get install redis-server")


@pytest.mark.parametrize("env", [(needs.REQUIRE_ENV, "1"), ("CI", "true")])
def test_a_missing_binary_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, env: tuple[str, str]
) -> None:
    monkeypatch.delenv(needs.REQUIRE_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(*env)
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        needs.require_binary("/nowhere/prometheus", "apt-get install prometheus")
    needs.require_binary(sys.executable, "-")  # present: neither skips nor fails


def test_a_unit_test_that_starts_a_server_fails() -> None:
    with pytest.raises(pytest.fail.Exception, match="starts redis-server but is not marked"):
        needs.starts_server("redis-server")


@pytest.mark.integration
def test_an_integration_test_may_start_a_server() -> None:
    needs.starts_server("redis-server")


def write(directory: Path, pid: int, counts: dict[str, dict[str, int]]) -> None:
    (directory / f"counts-{pid}.json").write_text(json.dumps(counts))


def test_counts_add_up_and_an_all_skipped_tier_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit = {"collected": 10, "passed": 9, "failed": 0, "skipped": 1}
    write(tmp_path, 1, {"unit": unit, "integration": {"collected": 3, "passed": 3}})
    write(tmp_path, 2, {"unit": {"collected": 2, "passed": 2}, "slow": {"collected": 0}})
    total = marker_counts.summarise(tmp_path)
    assert total["unit"]["collected"] == 12 and total["unit"]["passed"] == 11
    assert marker_counts.main([str(tmp_path)]) == 0
    assert "integration" in capsys.readouterr().out
    write(tmp_path, 3, {"slow": {"collected": 4, "passed": 0, "skipped": 4}})
    assert marker_counts.main([str(tmp_path)]) == 1
    assert "none passed: slow" in capsys.readouterr().err
    assert marker_counts.main([str(tmp_path / "empty")]) == 1
