"""`vidrec stack idle-cpu` and the gRPC readiness check, on real processes and sockets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidrec_dev.stack.cli import stack_app
from vidrec_dev.stack.health import GrpcCheck, health_from_json, health_to_json
from vidrec_dev.stack.idle import measure_idle_cpu
from vidrec_dev.stack.run_record import ServiceState, StackState, write_stack_state

SPIN = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"
SLEEP = "import time; time.sleep(30)"


@pytest.fixture
def busy_and_idle() -> Iterator[dict[str, int]]:
    procs = {
        name: subprocess.Popen([sys.executable, "-c", code])
        for name, code in (("busy", SPIN), ("idle", SLEEP))
    }
    try:
        yield {name: p.pid for name, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_a_spinning_service_shows_and_a_sleeping_one_does_not(
    busy_and_idle: dict[str, int],
) -> None:
    result = measure_idle_cpu(busy_and_idle, seconds=1.0)
    assert result.ms_per_s["busy"] > 50 > result.ms_per_s["idle"]  # of the 1000 ms a core has
    assert result.total == pytest.approx(sum(result.ms_per_s.values()))
    assert result.processes == {"busy": 1, "idle": 1}


def test_the_cli_reads_the_services_from_the_stack_state(
    busy_and_idle: dict[str, int], tmp_path: Path
) -> None:
    state = StackState(str(tmp_path), str(tmp_path))
    for name, pid in busy_and_idle.items():
        state.services[name] = ServiceState(name, pid, "", (), "", None)
    write_stack_state(state)
    args = ["idle-cpu", "--seconds", "0.5", "--json", "--run-dir", str(tmp_path)]
    result = CliRunner().invoke(stack_app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert set(body["ms_per_s"]) == {"busy", "idle"}
    assert body["ms_per_s"]["busy"] > body["ms_per_s"]["idle"]


def test_idle_cpu_without_a_stack_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(stack_app, ["idle-cpu", "--run-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no stack recorded" in result.output


def test_grpc_check_round_trips_and_a_closed_port_is_not_ready() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nothing answers there
        check = GrpcCheck(port)
        assert health_from_json(health_to_json(check)) == check
        assert check() is False
