"""Spec edits and spec rules through the operator: kopf in-process against the API server
(kmock, or the cluster in KUBECONFIG). An edited ``spec.trafficRouter`` is acted on by the
new router on the next tick; a rule violation fails the object with the field named; a
webhook-only rollout under ``nop`` is judged by a REAL HTTP hook on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_asyncio
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.operator.conftest import Cluster, run_operator
from tests.operator.test_handlers import HANDLERS, phase_in
from vidrec.rollout.routers import GatewayTableConfigMapRouter, RouteTarget

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]


@pytest_asyncio.fixture()
async def operator(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    monkeypatch.setenv("VIDREC_ROLLOUT__TICK_S", "0.5")
    monkeypatch.setenv("VIDREC_ROLLOUT__METRICS_PORT", "0")
    monkeypatch.setenv("VIDREC_ROLLOUT__PROMETHEUS_URL", "http://127.0.0.1:9")  # unused
    async with run_operator(cluster, HANDLERS):
        yield cluster


@pytest.fixture()
def hook() -> Iterator[tuple[str, list[Any]]]:
    """A hook answering 200 on 127.0.0.1, recording the bodies it was posted."""
    bodies: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/check", bodies
    server.shutdown()
    server.server_close()


def spec(router: dict[str, Any], *metrics: dict[str, Any], pause: bool = True) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"setWeight": 30}, {"pause": {}} if pause else {"analysis": {}}]
    return {
        "model": "ranker",
        "stableVersion": "1",
        "candidateVersion": "2",
        "strategy": {"canary": {"steps": steps, "scaleDownDelaySeconds": 0}},
        "analysis": {"interval": "1s", "failureLimit": 1, "metrics": list(metrics)},
        "trafficRouter": router,
    }


async def configmap_weights(cluster: Cluster, name: str) -> tuple[int, int] | None:
    """The routing table's weights in ConfigMap ``name``; None while it does not exist."""

    def read() -> tuple[int, int] | None:
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
        try:
            api.read_namespaced_config_map(name, cluster.namespace)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        target = RouteTarget("ranker", "1", "2", namespace=cluster.namespace, name=name)
        return GatewayTableConfigMapRouter(target, api=api).get_weights()

    return await asyncio.to_thread(read)


async def wait_weights(cluster: Cluster, name: str, want: tuple[int, int]) -> None:
    seen = None
    for _ in range(100):
        seen = await configmap_weights(cluster, name)
        if seen == want:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"ConfigMap {name}: weights {seen}, wanted {want}")


async def delete_configmaps(cluster: Cluster, *names: str) -> None:
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    for name in names:
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(api.delete_namespaced_config_map, name, cluster.namespace)


async def test_an_edited_traffic_router_is_the_one_that_acts(operator: Cluster) -> None:
    name = operator.unique("reroute")
    first, second = f"{name}-a", f"{name}-b"
    router = {"type": "gateway-table-configmap", "params": {"name": first}}
    try:
        await operator.create(name, spec(router))
        obj = await operator.wait_for(name, phase_in("Paused"), 30, "the pause step")
        assert obj["status"]["canaryWeight"] == 30
        await wait_weights(operator, first, (70, 30))
        assert await configmap_weights(operator, second) is None

        moved = {"type": "gateway-table-configmap", "params": {"name": second}}
        await operator.patch(name, {"spec": {"trafficRouter": moved}})
        await wait_weights(operator, second, (70, 30))  # reconciled, then held at 70/30
        assert await configmap_weights(operator, first) == (70, 30)  # the old one left alone

        await operator.patch(name, {"metadata": {"annotations": {"vidrec.io/command": "abort"}}})
        await operator.wait_for(name, phase_in("RolledBack"), 20, "the abort")
        await wait_weights(operator, second, (100, 0))  # the new router rolled back
        assert await configmap_weights(operator, first) == (70, 30)
    finally:
        await operator.delete(name)
        await delete_configmaps(operator, first, second)


async def test_metric_analysis_under_nop_is_rejected_saying_why_until_fixed(
    operator: Cluster,
) -> None:
    name = operator.unique("nop-metrics")
    latency = {"name": "latency", "template": "latency-p99"}
    await operator.create(name, spec({"type": "nop"}, latency, pause=False))
    obj = await operator.wait_for(
        name, lambda o: "message" in o.get("status", {}), 20, "the rejection"
    )
    assert obj["status"]["message"].startswith("Invalid spec: spec.trafficRouter.type: nop")
    assert "phase" not in obj["status"]  # never accepted: no tick runs
    warnings = [e for e in await operator.events(name) if e["reason"] == "InvalidSpec"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings
    assert "moves no traffic" in warnings[0]["message"] and "latency" in warnings[0]["message"]

    await operator.patch(name, {"spec": {"analysis": {"metrics": []}}})  # webhook-only: none
    obj = await operator.wait_for(name, lambda o: "phase" in o.get("status", {}), 20, "accept")
    assert obj["status"]["phase"] in ("Pending", "Progressing", "Promoting", "Succeeded")


async def test_a_webhook_check_under_nop_promotes(
    operator: Cluster, hook: tuple[str, list[Any]]
) -> None:
    url, bodies = hook
    name = operator.unique("nop-hook")
    check = {"name": "sla", "provider": "webhook",
             "webhook": {"url": url, "timeout": "5s", "payload": {"rollout": name}}}  # fmt: skip
    await operator.create(name, spec({"type": "nop"}, check, pause=False))
    obj = await operator.wait_for(name, phase_in("Succeeded", "RolledBack", "Paused"), 30)
    assert obj["status"]["phase"] == "Succeeded", obj["status"]["message"]
    assert {r["metric"] for r in obj["status"]["analysisHistory"]} == {"sla"}
    assert bodies and all(b == {"rollout": name} for b in bodies)
