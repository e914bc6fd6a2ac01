"""Real Locust against the real stack: the SLA gate passes at a generous SLA and fails at an
impossible one (both asserted, through the process exit code), degraded answers (Triton
killed: every feed is served unranked) counted over HTTP and gRPC and breaking the SLA above
the degraded limit, the gRPC and direct-Triton users, and the bearer token on every request
when one is configured.

One stack (test-profile artefacts, free ports) for the module; each Locust run is a few users
for a few seconds. Speed is not judged here: `vidrec bench capacity` measures it.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.settings import SLOW_MACHINE
from tests.integration.test_serving_stack import home, metric, poll
from tests.integration.test_stack import free_ports
from vidrec.ranking.triton_process import TritonPorts
from vidrec_dev.bench.serving import BenchPorts
from vidrec_dev.loadtest.chaos import KillService, settle
from vidrec_dev.loadtest.locust_run import LocustSpec, run_locust
from vidrec_dev.loadtest.sla import EXIT_SLA_BROKEN, Sla
from vidrec_dev.loadtest.stack import LoadStack, loadtest_config
from vidrec_dev.loadtest.workload import from_artefacts

pytestmark = pytest.mark.integration
SERVING = {"redis", "prepare", "triton", "retrieval", "features", "recommender", "grpc"}
RUN_S = 6


def free_stack_ports() -> tuple[BenchPorts, tuple[int, int]]:
    taken: set[int] = set()
    redis_base = free_ports(3, taken, bus=True)[0]
    th, tg, tm, rec, ret, feat, grpc, grpc_m, prom, proc, lake = free_ports(11, taken)
    ports = BenchPorts(
        redis_base, TritonPorts(http=th, grpc=tg, metrics=tm), rec, ret, feat, grpc, grpc_m, prom
    )
    return ports, (proc, lake)


@contextmanager
def running_stack(
    artefacts: Path, run_dir: Path, only: set[str] | None, env: dict[str, str] | None = None
) -> Iterator[LoadStack]:
    """A load-test stack on free ports, up for the block and stopped after it."""
    ports, events_ports = free_stack_ports()
    cfg = loadtest_config(run_dir, artefacts, ports, events_ports)
    with LoadStack(cfg, artefacts, env=env, only=only) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadStack]:
    with running_stack(
        artefacts, tmp_path_factory.mktemp("loadtest-stack"), SERVING, SLOW_MACHINE
    ) as s:
        yield s


@pytest.fixture(scope="module")
def workload(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return from_artefacts(artefacts).save(tmp_path_factory.mktemp("workload") / "w.json")


def spec(stack: LoadStack, out: Path, sla: Sla, workload: Path, **kw: object) -> LocustSpec:
    base: dict[str, object] = dict(
        host=stack.http,
        users=3,
        run_time_s=RUN_S,
        out_prefix=out,
        sla=sla,
        users_file=workload,
        think_ms=300.0,
        grpc_host=stack.grpc,
        triton_url=stack.triton_grpc,
    )
    return LocustSpec(**{**base, **kw})  # type: ignore[arg-type]


def test_sla_gate_passes_at_a_generous_sla(
    stack: LoadStack, workload: Path, tmp_path: Path
) -> None:
    sla = Sla(p99_ms=10_000, fail_ratio=0.05, degraded_ratio=0.01)
    result = run_locust(spec(stack, tmp_path / "ok", sla, workload))
    s = result.summary
    assert result.exit_code == 0, result.log.read_text()[-2000:]
    assert s.verdict.passed and s.requests > 0 and s.p99_ms <= 10_000
    # a healthy stack: the degraded share is judged (below the limit) and reported
    assert s.answers > 0 and s.degraded_ratio <= sla.degraded_ratio
    assert s.verdict.degraded_ratio == pytest.approx(s.degraded_ratio)
    names = {k.split(" ", 1)[1] for k in s.by_name}
    assert {"home", "related"} <= names  # the mix reached several endpoints
    assert sum(sec.requests for sec in s.timeline) == s.requests
    for suffix in ("_stats.csv", "_stats_history.csv", "_report.html", "_latency.png"):
        assert Path(f"{tmp_path / 'ok'}{suffix}").stat().st_size > 0, suffix


def test_sla_gate_fails_at_an_impossible_sla(
    stack: LoadStack, workload: Path, tmp_path: Path
) -> None:
    result = run_locust(spec(stack, tmp_path / "no", Sla(p99_ms=0.001, fail_ratio=0.0), workload))
    assert result.exit_code == EXIT_SLA_BROKEN
    assert not result.summary.verdict.passed and result.summary.requests > 0
    assert any(r.startswith("p99") for r in result.summary.verdict.reasons)


def test_grpc_and_triton_users(stack: LoadStack, workload: Path, tmp_path: Path) -> None:
    run = spec(
        stack,
        tmp_path / "grpc",
        Sla(10_000, 0.05),
        workload,
        users=2,
        classes=("GrpcApiUser", "TritonUser"),
    )
    result = run_locust(run)
    s = result.summary
    assert result.exit_code == 0, result.log.read_text()[-2000:]
    grpc_calls = {k: v for k, v in s.by_name.items() if k.startswith("grpc ")}
    assert grpc_calls["grpc ranker.infer"]["requests"] > 0
    assert any(k in grpc_calls for k in ("grpc home", "grpc related", "grpc trending"))
    assert all(v["failures"] == 0 for v in grpc_calls.values())


@pytest.fixture
def ranker_down(stack: LoadStack) -> Iterator[LoadStack]:
    """The stack with Triton crashed: every recommendation is answered (200), unranked and
    marked degraded. Triton is started again afterwards and the stack settled."""
    kill = KillService("triton", "triton", "Triton killed (SIGKILL)")
    kill.inject(stack)
    try:
        poll(lambda: home(stack.http, 1).degraded, 30.0)
        yield stack
    finally:
        kill.undo(stack)
        settle(stack)


def test_degraded_answers_count_against_the_sla(
    ranker_down: LoadStack, workload: Path, tmp_path: Path
) -> None:
    """Fast, error-free answers, many degraded: Locust counts exactly the answers the server
    degraded, not as failures, and the gate breaks on them alone (exit 3) at the default 1 %
    limit; over gRPC they are counted too, and a limit that tolerates them is met."""
    api = ranker_down.http
    before = metric(api, "vidrec_degraded_total", stage="scorer/triton_ranker")
    run = spec(ranker_down, tmp_path / "http", Sla(10_000, 0.05), workload, users=2)
    result = run_locust(run)
    served = metric(api, "vidrec_degraded_total", stage="scorer/triton_ranker") - before
    s = result.summary
    assert result.exit_code == EXIT_SLA_BROKEN, result.log.read_text()[-2000:]
    assert s.failures == 0  # degraded answers are not Locust failures
    assert 0 < s.degraded == served <= s.answers
    assert s.degraded_ratio > 0.01
    assert s.verdict.degraded_ratio == pytest.approx(s.degraded_ratio)
    assert s.verdict.reasons == (f"degraded share {s.degraded_ratio:.2%} > 1.00%",)
    assert sum(sec.degraded for sec in s.timeline) == s.degraded

    tolerant = Sla(10_000, 0.05, degraded_ratio=1.0)
    run = spec(
        ranker_down, tmp_path / "grpc", tolerant, workload, users=2, classes=("GrpcApiUser",)
    )
    result = run_locust(run)
    g = result.summary
    assert result.exit_code == 0, result.log.read_text()[-2000:]
    assert g.verdict.passed and g.failures == 0 and 0 < g.degraded <= g.answers


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []  # noqa: RUF012

    def _answer(self, code: int, body: dict[str, object]) -> None:
        self.seen.append(self.headers.get("Authorization"))
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"items": [{"video_id": 1}], "degraded": False})

    def do_POST(self) -> None:
        n = len(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self._answer(202, {"accepted": n})

    def log_message(self, *_: object) -> None:
        return None


def test_bearer_token_is_sent_when_configured(tmp_path: Path, workload: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}"
        run = LocustSpec(
            host=host,
            users=2,
            run_time_s=3,
            out_prefix=tmp_path / "auth",
            users_file=workload,
            api_key="s3cret",
            think_ms=100.0,
            html=False,
            plot=False,
        )
        result = run_locust(run)
    finally:
        server.shutdown()
    assert result.exit_code == 0 and _Recorder.seen
    assert set(_Recorder.seen) == {"Bearer s3cret"}
