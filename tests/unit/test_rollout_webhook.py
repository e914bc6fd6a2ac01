"""Webhook metric checks: the spec carries the hook, ``build_deps`` builds it, and a real HTTP
server on 127.0.0.1 decides — 2xx passes, 5xx fails, a slow or absent hook is inconclusive."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vidrec.rollout.analysis import Verdict
from vidrec.rollout.operator import OperatorSettings, build_deps, measure, tick
from vidrec.rollout.providers import WebhookProvider
from vidrec.rollout.spec import RolloutSpec, SpecError, WebhookSpec

SETTINGS = OperatorSettings(prometheus_url="http://127.0.0.1:9")  # never queried here


class Hook:
    """An HTTP hook on 127.0.0.1: ``/ok`` 200, ``/fail`` 503, ``/slow`` 200 after 2 s."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                hook.bodies.append((self.path, json.loads(self.rfile.read(size) or b"null")))
                if self.path == "/slow":
                    time.sleep(2.0)
                code = 503 if self.path == "/fail" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.bodies]


@pytest.fixture()
def hook() -> Iterator[Hook]:
    h = Hook()
    thread = threading.Thread(target=h.server.serve_forever, daemon=True)
    thread.start()
    yield h
    h.server.shutdown()
    h.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


def webhook_metric(name: str, url: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "webhook", "webhook": {"url": url, **extra}}


def rollout(*metrics: dict[str, Any], router: str = "nop", **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "ranker",
        "stableVersion": "3",
        "candidateVersion": "4",
        "strategy": {
            "canary": {"steps": [{"setWeight": 20}, {"analysis": {}}], "scaleDownDelaySeconds": 0}
        },
        "analysis": {"interval": "10s", "failureLimit": 1, "metrics": list(metrics)},
        "trafficRouter": {"type": router},
    }
    spec.update(over)
    return spec


# --- spec ----------------------------------------------------------------------------------


def test_a_webhook_metric_parses_with_its_hook_and_a_pass_threshold() -> None:
    raw = webhook_metric("load", "http://hook.test/run", timeout="90s", payload={"users": 5})
    spec = RolloutSpec.from_dict(rollout(raw))
    (m,) = spec.analysis.metrics
    assert m.webhook == WebhookSpec("http://hook.test/run", 90.0, {"users": 5})
    assert (m.threshold_min, m.threshold_max, m.template, m.query) == (1.0, None, None, None)
    assert m.provider_key.startswith("webhook ") and "hook.test" in m.provider_key


@pytest.mark.parametrize(
    ("metric", "field", "says"),
    [
        ({"name": "h", "provider": "webhook"}, "metrics[0].webhook.url", "required"),
        (webhook_metric("h", ""), "metrics[0].webhook.url", "http(s) URL"),
        (webhook_metric("h", "ftp://hook.test/"), "metrics[0].webhook.url", "http(s) URL"),
        (webhook_metric("h", "http:///run"), "metrics[0].webhook.url", "with a host"),
        (webhook_metric("h", 42), "metrics[0].webhook.url", "http(s) URL"),
        (webhook_metric("h", "http://h/", timeout="0s"), "metrics[0].webhook.timeout", "> 0"),
        (webhook_metric("h", "http://h/", payload=[1]), "metrics[0].webhook.payload", "object"),
        (webhook_metric("h", "http://h/", headers={}), "metrics[0].webhook.headers", "unknown"),
        (
            {**webhook_metric("h", "http://h/"), "template": "latency-p99"},
            "metrics[0].template",
            "no template",
        ),
        (
            {"name": "p", "query": "up", "thresholdMin": 1, "webhook": {"url": "http://h/"}},
            "metrics[0].webhook",
            "only for provider: webhook",
        ),
        ({"name": "p", "provider": "datadog", "query": "up"}, "metrics[0].provider", "unknown"),
    ],
)
def test_a_bad_webhook_metric_is_a_spec_error_naming_the_field(
    metric: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(SpecError) as err:
        RolloutSpec.from_dict(rollout(metric))
    assert err.value.field_path == f"spec.analysis.{field}"
    assert says in err.value.message


# --- build_deps ----------------------------------------------------------------------------


def test_build_deps_builds_one_provider_per_distinct_hook() -> None:
    same = webhook_metric("a", "http://hook.test/run", payload={"users": 5})
    spec = RolloutSpec.from_dict(
        rollout(
            same,
            {**copy.deepcopy(same), "name": "b"},  # the same hook: shares a provider
            webhook_metric("c", "http://hook.test/run", payload={"users": 50}),
            webhook_metric("d", "http://other.test/run", timeout="5s"),
        )
    )
    deps = build_deps(spec, "default", SETTINGS)
    hooks = {k: p for k, p in deps.providers.items() if k != "prometheus"}
    assert len(hooks) == 3 and "prometheus" in deps.providers
    a, b, c, d = (hooks[m.provider_key] for m in spec.analysis.metrics)
    assert a is b and len({id(a), id(c), id(d)}) == 3
    assert isinstance(c, WebhookProvider) and c.payload == {"users": 50}
    assert isinstance(d, WebhookProvider) and d.address == "http://other.test/run"


# --- against a real hook -------------------------------------------------------------------


def test_measure_passes_on_2xx_fails_on_5xx_and_posts_the_payload(hook: Hook) -> None:
    spec = RolloutSpec.from_dict(
        rollout(
            webhook_metric("ok", f"{hook.url}/ok", payload={"users": 5}),
            {**webhook_metric("bad", f"{hook.url}/fail"), "query": "model={model} v={candidate}"},
        )
    )
    deps = build_deps(spec, "default", SETTINGS)
    ok, bad = (measure(m, spec, deps.providers) for m in spec.analysis.metrics)
    assert (ok.verdict, ok.value) == (Verdict.PASS, 1.0)
    assert (bad.verdict, bad.value) == (Verdict.FAIL, 0.0)
    assert "outside min 1" in bad.reason
    assert hook.bodies == [("/ok", {"users": 5}), ("/fail", {"query": "model=ranker v=canary"})]


def test_a_slow_or_unreachable_hook_is_inconclusive_not_a_failure(hook: Hook) -> None:
    spec = RolloutSpec.from_dict(
        rollout(
            webhook_metric("slow", f"{hook.url}/slow", timeout="300ms"),
            webhook_metric("gone", f"http://127.0.0.1:{closed_port()}/run", timeout="2s"),
        )
    )
    deps = build_deps(spec, "default", SETTINGS)
    started = time.monotonic()
    slow, gone = (measure(m, spec, deps.providers) for m in spec.analysis.metrics)
    assert time.monotonic() - started < 1.9  # the hook's 300 ms timeout, not its 2 s answer
    assert (slow.verdict, slow.value) == (Verdict.INCONCLUSIVE, None)
    assert (gone.verdict, gone.value) == (Verdict.INCONCLUSIVE, None)
    assert hook.paths() == ["/slow"]


def run_ticks(spec: RolloutSpec, n: int, step_s: float) -> list[Any]:
    deps = build_deps(spec, "default", SETTINGS)
    status: dict[str, Any] | None = None
    results: list[Any] = []
    for i in range(n):
        r = tick(spec, status, deps, now=1000.0 + i * step_s)
        status, results = r.status, [*results, r]
        if r.phase in ("Succeeded", "RolledBack", "Failed"):
            break
    return results


def test_tick_promotes_on_a_passing_hook_and_rolls_back_on_a_failing_one(hook: Hook) -> None:
    good = RolloutSpec.from_dict(rollout(webhook_metric("sla", f"{hook.url}/ok")))
    runs = run_ticks(good, 12, 6.0)
    assert runs[-1].phase == "Succeeded", runs[-1].status["message"]
    checked = [res for r in runs for res in r.results]
    assert checked and {res.verdict for res in checked} == {Verdict.PASS}
    assert "/ok" in hook.paths()

    bad = RolloutSpec.from_dict(rollout(webhook_metric("sla", f"{hook.url}/fail")))
    runs = run_ticks(bad, 12, 6.0)
    assert runs[-1].phase == "RolledBack"
    assert "sla = 0, outside min 1" in runs[-1].status["message"]
    assert runs[-1].weight == 0


def test_tick_pauses_on_an_unreachable_hook() -> None:
    gone = f"http://127.0.0.1:{closed_port()}/run"
    raw = rollout(webhook_metric("sla", gone, timeout="1s"))
    raw["analysis"]["inconclusiveLimit"] = 1
    spec = RolloutSpec.from_dict(raw)
    runs = run_ticks(spec, 12, 6.0)
    final = runs[-1].status
    assert final["phase"] == "Paused" and final["failedChecks"] == 0, final
    assert final["analysisHistory"][-1]["verdict"] == Verdict.INCONCLUSIVE.value
