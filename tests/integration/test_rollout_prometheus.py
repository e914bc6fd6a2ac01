"""PrometheusProvider against a REAL prometheus scraping an exporter this test controls."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.needs import require_binary, starts_server
from vidrec.rollout.providers import ManyValues, NoData, PrometheusProvider, ProviderError

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gauge() -> Iterator[tuple[Gauge, int]]:
    registry = CollectorRegistry()
    g = Gauge("rollout_test_value", "set by the test", ["variant"], registry=registry)
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield g, port
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def prometheus(gauge: tuple[Gauge, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    starts_server("prometheus")
    require_binary(PROMETHEUS, "apt-get install prometheus")
    _, exporter_port = gauge
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: test\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    port = _free_port()
    args = [
        PROMETHEUS,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (work / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def _poll(provider: PrometheusProvider, promql: str, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return provider.query(promql)
        except (NoData, ProviderError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def test_query_returns_the_exported_value(gauge: tuple[Gauge, int], prometheus: str) -> None:
    g, _ = gauge
    g.labels("canary").set(0.042)
    g.labels("stable").set(0.030)
    provider = PrometheusProvider(prometheus, timeout_s=2, retries=1)
    deadline = time.monotonic() + 30
    while not provider.is_online():
        assert time.monotonic() < deadline, "prometheus never became ready"
        time.sleep(0.2)
    assert _poll(provider, 'rollout_test_value{variant="canary"}') == pytest.approx(0.042)
    g.labels("canary").set(0.5)
    deadline = time.monotonic() + 15
    while provider.query('rollout_test_value{variant="canary"}') != pytest.approx(0.5):
        assert time.monotonic() < deadline, "new value never scraped"
        time.sleep(0.25)
    assert provider.query("scalar(vector(3))") == 3.0


def test_missing_series_and_nan_are_no_data(prometheus: str) -> None:
    provider = PrometheusProvider(prometheus, timeout_s=2)
    with pytest.raises(NoData):
        provider.query('rollout_test_value{variant="nobody"}')
    with pytest.raises(NoData):
        provider.query("vector(0) / vector(0)")  # rate()/rate() over no traffic is NaN


def test_several_series_are_many_values(gauge: tuple[Gauge, int], prometheus: str) -> None:
    gauge[0].labels("a").set(1)
    gauge[0].labels("b").set(2)
    provider = PrometheusProvider(prometheus, timeout_s=2)
    _poll(provider, 'rollout_test_value{variant="b"}')
    with pytest.raises(ManyValues):
        provider.query("rollout_test_value")


def test_bad_promql_fails_at_once(prometheus: str) -> None:
    slept: list[float] = []
    provider = PrometheusProvider(prometheus, timeout_s=2, retries=3, sleep=slept.append)
    with pytest.raises(ProviderError, match="parse error"):
        provider.query("sum(")
    assert slept == []  # a 4xx is not retried


def test_timeout_is_retried_with_backoff_then_fails() -> None:
    """A server that accepts and never answers: each attempt times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        slept: list[float] = []
        provider = PrometheusProvider(
            url, timeout_s=0.2, retries=2, backoff_s=0.1, sleep=slept.append
        )
        started = time.monotonic()
        with pytest.raises(ProviderError, match="3 attempts"):
            provider.query("up")
        assert slept == [0.1, 0.2]
        assert time.monotonic() - started < 3
        assert not provider.is_online()


def test_unreachable_is_offline() -> None:
    provider = PrometheusProvider(f"http://127.0.0.1:{_free_port()}", timeout_s=0.5, retries=0)
    assert not provider.is_online()
    with pytest.raises(ProviderError):
        provider.query("up")
