"""A real Prometheus (1 s scrapes) over an exporter that fakes the serving series.

The exporter publishes what the serving side and event processor export per ``variant``
(``vidrec_request_seconds``, ``vidrec_impressions_total``, ``vidrec_clicks_total``) for
``stable`` and, unless told otherwise, ``canary``; the test picks the canary's latency and
CTR. Given a ``share`` (the candidate's fraction of users, e.g. read from the routing table),
the users are split the way the router says, so a variant with no users has no series.
Skips with the reason when ``/usr/bin/prometheus`` is absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from tests.needs import require_binary, starts_server
from vidrec.api.request_metrics import LATENCY_BUCKETS

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Canary:
    latency_s: float = 0.02  # every canary request takes this long
    ctr: float = 0.1  # stable's CTR is 0.1
    present: bool = True  # False: the canary exports nothing (no data)


@contextmanager
def fake_serving(
    canary: Canary, per_tick: int = 50, share: Callable[[], float] | None = None
) -> Iterator[str]:
    """Serve the series on a free port, fed every 0.1 s; yield the scrape target.

    Without ``share`` both variants get ``per_tick`` users every tick whatever the router
    says; with it they split ``per_tick`` users by the live share."""
    reg = CollectorRegistry()
    latency = Histogram("vidrec_request_seconds", "", ["endpoint", "variant"],
                        buckets=LATENCY_BUCKETS, registry=reg)  # fmt: skip
    impressions = Counter("vidrec_impressions", "", ["variant"], registry=reg)
    clicks = Counter("vidrec_clicks", "", ["variant"], registry=reg)
    variants = {"stable": (0.02, 0.1), **({"canary": (canary.latency_s, canary.ctr)})}
    if not canary.present:
        del variants["canary"]
    stop = threading.Event()

    def users() -> dict[str, int]:
        if share is None:
            return dict.fromkeys(variants, per_tick)
        on_canary = round(per_tick * share())
        return {"stable": per_tick - on_canary, "canary": on_canary}

    def feed() -> None:
        while not stop.wait(0.1):
            for variant, n in users().items():
                if variant not in variants or n <= 0:
                    continue  # no users, no series: what serving does for an unused variant
                seconds, ctr = variants[variant]
                for _ in range(max(1, n // 5)):
                    latency.labels("home", variant).observe(seconds)
                impressions.labels(variant).inc(n)
                clicks.labels(variant).inc(round(n * ctr))

    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=reg)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        feeder.join()
        server.shutdown()


@contextmanager
def prometheus(target: str, workdir: Path) -> Iterator[str]:
    """A real Prometheus scraping ``target`` every second; yields its URL once it has data."""
    starts_server("prometheus")
    require_binary(PROMETHEUS, "apt-get install prometheus")
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: serving, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    args = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not _has_data(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (workdir / "prometheus.log").read_text()
                pytest.fail(f"prometheus did not scrape {target}: {log_text}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _has_data(url: str) -> bool:
    try:
        r = httpx.get(f"{url}/api/v1/query", params={"query": "vidrec_impressions_total"})
        return r.status_code == 200 and bool(r.json()["data"]["result"])
    except httpx.HTTPError:
        return False
