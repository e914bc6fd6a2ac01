"""ManagedProcess: failures name the service and its log, stop() reaches the whole group."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidrec_dev.stack.health import (
    CallableCheck,
    ExitCheck,
    HttpCheck,
    RedisCheck,
    TcpCheck,
    health_from_json,
    health_to_json,
)
from vidrec_dev.stack.process import ManagedProcess, ServiceSpec, StackError, pid_alive


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_service_that_exits_names_itself_its_code_and_its_log(tmp_path: Path) -> None:
    spec = ServiceSpec(
        "crasher",
        python("import sys; print('bad flag --frobnicate'); sys.exit(3)"),
        TcpCheck(free_port()),
    )
    proc = ManagedProcess(spec, tmp_path).start()
    with pytest.raises(StackError) as info:
        proc.wait_healthy(timeout_s=10)
    msg = str(info.value)
    assert "'crasher'" in msg and "code 3" in msg
    assert str(tmp_path / "logs" / "crasher.log") in msg
    assert "bad flag --frobnicate" in msg  # the log's last lines are quoted
    assert not (tmp_path / "pids" / "crasher.pid").exists()


def test_a_service_that_never_gets_healthy_times_out_and_is_stopped(tmp_path: Path) -> None:
    port = free_port()
    spec = ServiceSpec("sleeper", python("import time; time.sleep(60)"), TcpCheck(port))
    proc = ManagedProcess(spec, tmp_path).start()
    pid = proc.pid
    assert pid is not None
    started = time.monotonic()
    with pytest.raises(StackError) as info:
        proc.wait_healthy(timeout_s=0.5)
    assert time.monotonic() - started < 10
    msg = str(info.value)
    assert "'sleeper'" in msg and "not healthy after" in msg and f"127.0.0.1:{port}" in msg
    assert str(tmp_path / "logs" / "sleeper.log") in msg
    assert not pid_alive(pid)


def test_stop_kills_children_too_and_is_idempotent(tmp_path: Path) -> None:
    child_pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, time, pathlib\n"
        "c = subprocess.Popen(['sleep', '60'])\n"
        f"pathlib.Path({str(child_pidfile)!r}).write_text(str(c.pid))\n"
        "time.sleep(60)\n"
    )
    spec = ServiceSpec("parent", python(code), CallableCheck(child_pidfile.exists, "child up"))
    proc = ManagedProcess(spec, tmp_path).start()
    proc.wait_healthy(timeout_s=10)
    pid, child = proc.pid, int(child_pidfile.read_text())
    assert pid is not None and pid_alive(pid) and pid_alive(child)
    assert (tmp_path / "pids" / "parent.pid").read_text().strip() == str(pid)
    proc.stop()
    assert not pid_alive(pid) and not pid_alive(child)
    assert not (tmp_path / "pids" / "parent.pid").exists()
    proc.stop()  # harmless


def test_a_taken_port_is_refused_before_starting(tmp_path: Path, listening: int) -> None:
    spec = ServiceSpec("web", python("pass"), TcpCheck(listening), ports=(listening,))
    with pytest.raises(StackError, match=rf"'web': port {listening} .* in use"):
        ManagedProcess(spec, tmp_path).start()
    assert not (tmp_path / "pids" / "web.pid").exists()


def test_oneshot_step_succeeds_on_exit_zero_and_fails_otherwise(tmp_path: Path) -> None:
    ok = ManagedProcess(ServiceSpec("load", python("print('loaded')"), ExitCheck()), tmp_path)
    ok.start().wait_healthy(timeout_s=10)
    assert "loaded" in (tmp_path / "logs" / "load.log").read_text()
    bad = ServiceSpec("load", python("raise SystemExit(2)"), ExitCheck())
    with pytest.raises(StackError, match="'load' exited with code 2"):
        ManagedProcess(bad, tmp_path).start().wait_healthy(timeout_s=10)


def test_setup_runs_before_start_and_its_failure_names_the_service(tmp_path: Path) -> None:
    marker = tmp_path / "setup-ran"
    spec = ServiceSpec("cfg", python("pass"), ExitCheck(), setup=marker.touch)
    ManagedProcess(spec, tmp_path).start().wait_healthy(timeout_s=10)
    assert marker.exists()

    def broken() -> None:
        raise OSError("disk full")

    spec = ServiceSpec("cfg", python("pass"), ExitCheck(), setup=broken)
    with pytest.raises(StackError, match="'cfg': setup failed: disk full"):
        ManagedProcess(spec, tmp_path).start()


def test_an_unexecutable_command_is_a_stack_error(tmp_path: Path) -> None:
    spec = ServiceSpec("ghost", ("/nonexistent/bin/server",), TcpCheck(free_port()))
    with pytest.raises(StackError, match="'ghost' could not be executed"):
        ManagedProcess(spec, tmp_path).start()


def test_tcp_check_sees_a_listener_and_http_check_an_unreachable_url(listening: int) -> None:
    assert TcpCheck(listening)()
    assert not TcpCheck(free_port())()
    assert not HttpCheck(f"http://127.0.0.1:{free_port()}/ready")()
    assert not RedisCheck((free_port(),))()


def test_health_checks_round_trip_through_json_except_callables() -> None:
    for check in (TcpCheck(1234), HttpCheck("http://x/ready"), RedisCheck((1, 2), cluster=False)):
        assert health_from_json(health_to_json(check)) == check
    assert health_to_json(CallableCheck(lambda: True, "always")) is None
    assert health_from_json(None) is None
