"""`Stack` on the REAL servers: a Redis Cluster, tritonserver serving the pipeline's ranker and
Prometheus scraping it, all on free 127.0.0.1 ports; then `down` from another process.

The artefacts come from one `test`-profile pipeline run shared by the module (≈20 s); set
``VIDREC_TEST_ARTEFACTS=DIR`` to reuse a directory built by `vidrec pipeline run` instead.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from vidrec.config import Config, load_config
from vidrec_dev.stack import Stack, StackError, read_stack_state
from vidrec_dev.stack.process import group_members, pid_alive

pytestmark = pytest.mark.integration
SERVICES = {"redis", "triton", "prometheus"}
BUS = 10_000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(n: int, taken: set[int], bus: bool = False) -> list[int]:
    """``n`` consecutive free ports (and, for a Redis Cluster, their +10000 bus twins)."""
    for _ in range(500):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        ports = list(range(base, base + n)) + ([p + BUS for p in range(base, base + n)] * bus)
        if max(ports) < 65_536 and not taken & set(ports) and all(map(_free, ports)):
            taken |= set(ports)
            return ports[:n]
    raise RuntimeError("no free 127.0.0.1 ports")


def stack_config(run_dir: Path, cluster: bool = True) -> Config:
    taken: set[int] = set()
    redis_base = free_ports(3, taken, bus=True)[0]
    http, grpc, metrics = free_ports(3, taken)
    (prom,) = free_ports(1, taken)
    cfg = load_config({})
    return dataclasses.replace(
        cfg,
        stack=dataclasses.replace(
            cfg.stack,
            run_dir=run_dir,
            redis_cluster=cluster,
            redis_base_port=redis_base,
            prometheus_port=prom,
            scrape_interval_s=1.0,
            start_timeout_s=60.0,
        ),
        triton=dataclasses.replace(
            cfg.triton, http_port=http, grpc_port=grpc, metrics_port=metrics
        ),
    )


@pytest.fixture(scope="module")
def stack(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cfg = stack_config(tmp_path_factory.mktemp("stack-run"))
    s = Stack(cfg, artefacts)
    try:
        s.up(only=SERVICES, progress=False)
        yield s
    finally:
        s.down()


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def test_redis_cluster_has_three_masters_and_serves_keys(stack: Stack) -> None:
    ports = [stack.cfg.stack.redis_base_port + i for i in range(3)]
    node = redis.Redis(host="127.0.0.1", port=ports[0])
    assert node.cluster("info")["cluster_state"] == "ok"
    masters = [n for n in node.cluster("nodes").values() if "master" in n["flags"]]
    assert len(masters) == 3
    node.close()
    state = read_stack_state(stack.run_dir)
    assert state is not None and state.env["VIDREC_REDIS__CLUSTER"] == "true"
    client = redis.RedisCluster.from_url(state.url("redis"))
    client.mset_nonatomic({f"k{i}": str(i) for i in range(50)})  # keys land on every master
    assert client.get("k42") == b"42"
    client.close()


def test_triton_is_ready_with_the_ranker_loaded(stack: Stack) -> None:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    base = state.url("triton")
    with urllib.request.urlopen(f"{base}/v2/models/ranker/ready", timeout=5) as resp:
        assert resp.status == 200
    req = urllib.request.Request(f"{base}/v2/repository/index", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        models = {m["name"]: m.get("state") for m in json.loads(resp.read())}
    assert models["ranker"] == "READY"
    assert models.get("ranker_trt") != "READY"  # explicit model control: only the ranker


def test_prometheus_scrapes_triton(stack: Stack) -> None:
    url = read_stack_state(stack.run_dir).url("prometheus")  # type: ignore[union-attr]
    query = f"{url}/api/v1/query?query=up%7Bjob%3D%22triton%22%7D"
    deadline, result = time.monotonic() + 30, []
    while time.monotonic() < deadline:  # first results take a few seconds: poll
        result = get_json(query)["data"]["result"]  # type: ignore[index]
        if result and result[0]["value"][1] == "1":
            break
        time.sleep(0.5)
    assert result and result[0]["value"][1] == "1", f"triton target not up: {result}"


def test_status_reports_every_service_healthy(stack: Stack) -> None:
    rows = stack.status()
    assert [r.service for r in rows] == ["redis", "triton", "prometheus"]
    for row in rows:
        assert row.alive and row.healthy and row.pid is not None, row


def test_a_second_up_keeps_the_running_services(stack: Stack) -> None:
    before = {r.service: r.pid for r in stack.status()}
    started = time.monotonic()
    stack.up(only=SERVICES, progress=False)
    assert {r.service: r.pid for r in stack.status()} == before
    assert time.monotonic() - started < 5


def test_a_failing_service_is_named_and_what_started_is_stopped(tmp_path: Path) -> None:
    broken = tmp_path / "art" / "model_repository" / "ranker"
    broken.mkdir(parents=True)
    (broken / "config.pbtxt").write_text('name: "ranker"\nbackend: "no_such_backend"\n')
    s = Stack(stack_config(tmp_path / "run", cluster=False), tmp_path / "art")
    with pytest.raises(StackError) as info:
        s.up(only={"redis", "triton"}, progress=False)
    msg = str(info.value)
    assert "'triton'" in msg and str(tmp_path / "run" / "logs" / "triton.log") in msg
    state = read_stack_state(tmp_path / "run")
    assert state is not None and state.services == {}  # redis was started, then stopped
    assert not list((tmp_path / "run" / "pids").glob("*.pid"))
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=s.cfg.stack.redis_base_port, socket_timeout=1).ping()


def test_down_from_another_process_leaves_nothing_running(stack: Stack) -> None:
    members = [m for r in stack.status() if r.pid for m in group_members(r.pid)]
    assert len(members) >= 5  # launcher + 3 redis-servers, tritonserver (+ stubs), prometheus
    code = "import sys; from vidrec_dev.stack.cli import stack_app; stack_app(sys.argv[1:])"
    argv = [sys.executable, "-c", code, "down", "--run-dir", str(stack.run_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stopped: prometheus, triton, redis" in done.stderr
    assert not [m for m in members if pid_alive(m)]
    assert read_stack_state(stack.run_dir) is None
    assert stack.down() == []  # a second down is harmless
    assert stack.status() == []
