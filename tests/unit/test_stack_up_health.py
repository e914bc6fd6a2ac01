"""`vidrec stack up` (so `make up`) fails when a service it leaves behind is not healthy, even
one that passed its first probe; real processes and sockets, a one-service plan."""

from __future__ import annotations

import dataclasses
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidrec.config import Config, load_config
from vidrec_dev.stack import runner
from vidrec_dev.stack.cli import stack_app
from vidrec_dev.stack.health import HttpCheck
from vidrec_dev.stack.process import ServiceSpec, StackError

# Answers 200 to the first ``ok`` GETs, then 503: healthy at start, unhealthy afterwards.
SERVER = """
import http.server, sys
ok = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global ok
        ok -= 1
        self.send_response(200 if ok >= 0 else 503)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(run_dir: Path) -> Config:
    cfg = load_config({})
    return dataclasses.replace(cfg, stack=dataclasses.replace(cfg.stack, run_dir=run_dir))


@pytest.fixture
def one_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[int]]:
    """A plan of one HTTP service, ``lake``; append how many probes it answers 200 to."""
    answers: list[int] = []
    port = free_port()

    def plan(cfg: Config, artefacts: Path) -> list[tuple[ServiceSpec, ...]]:
        argv = (sys.executable, "-c", SERVER, str(port), str(answers[-1]))
        return [(ServiceSpec("lake", argv, HttpCheck(f"http://127.0.0.1:{port}/"), ports=(port,)),)]

    monkeypatch.setattr(runner, "build_plan", plan)
    monkeypatch.setattr(runner, "SETTLE_S", 1.0)
    yield answers
    runner.Stack(config(tmp_path / "run"), tmp_path).down()


def test_a_healthy_stack_comes_up(one_service: list[int], tmp_path: Path) -> None:
    one_service.append(10**6)
    stack = runner.Stack(config(tmp_path / "run"), tmp_path)
    stack.up(progress=False)
    assert [(r.service, r.ok) for r in stack.status()] == [("lake", True)]


def test_up_fails_naming_a_service_unhealthy_after_its_first_probe(
    one_service: list[int], tmp_path: Path
) -> None:
    one_service.append(1)
    stack = runner.Stack(config(tmp_path / "run"), tmp_path)
    with pytest.raises(StackError, match=r"not healthy: lake \(unhealthy; see .*lake\.log\)"):
        stack.up(progress=False)
    assert stack.status()[0].alive  # left running for its log to be read; `down` stops it


def test_the_cli_exits_1_and_a_second_up_too(one_service: list[int], tmp_path: Path) -> None:
    one_service.append(1)
    args = ["up", "--run-dir", str(tmp_path / "run"), "--artefacts", str(tmp_path)]
    first = CliRunner().invoke(stack_app, args)
    assert first.exit_code == 1, first.output
    assert "unhealthy" in first.output and "not healthy: lake" in first.output
    second = CliRunner().invoke(stack_app, args)  # already running, still unhealthy
    assert second.exit_code == 1, second.output
    assert "lake" in second.output and "not healthy" in second.output
