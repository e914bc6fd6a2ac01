"""`vidrec stack ...`: stack errors are one message and exit code 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vidrec_dev.stack.cli import parse_only, stack_app

runner = CliRunner()


def test_help_lists_the_commands_and_services() -> None:
    result = runner.invoke(stack_app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status"):
        assert command in result.output
    up_help = runner.invoke(stack_app, ["up", "--help"], env={"COLUMNS": "300"}).output
    assert "--only" in up_help and "prometheus" in up_help and "--standalone-redis" in up_help


def test_unknown_service_exits_1_with_the_choices(tmp_path: Path) -> None:
    (tmp_path / "art" / "model_repository").mkdir(parents=True)
    args = ["up", "--only", "redis,bogus", "--run-dir", str(tmp_path / "run")]
    result = runner.invoke(stack_app, [*args, "--artefacts", str(tmp_path / "art")])
    assert result.exit_code == 1
    assert "unknown service(s) bogus" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash


def test_missing_artefacts_exit_1_naming_the_fix(tmp_path: Path) -> None:
    args = ["up", "--run-dir", str(tmp_path), "--artefacts", str(tmp_path / "none")]
    result = runner.invoke(stack_app, args)
    assert result.exit_code == 1 and "vidrec pipeline run" in result.output


def test_status_and_down_on_an_empty_run_dir(tmp_path: Path) -> None:
    status = runner.invoke(stack_app, ["status", "--run-dir", str(tmp_path)])
    assert status.exit_code == 0 and "no stack recorded" in status.output
    down = runner.invoke(stack_app, ["down", "--run-dir", str(tmp_path)])
    assert down.exit_code == 0 and "nothing was running" in down.output


def test_parse_only() -> None:
    assert parse_only(None) is None and parse_only(" , ") is None
    assert parse_only("redis, triton,") == {"redis", "triton"}
