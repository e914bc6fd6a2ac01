"""The rollout operator end to end: kopf in-process, the API server (kmock, or the cluster in
KUBECONFIG), a REAL Prometheus scraping faked serving series, the Redis gateway-table router
on a REAL standalone redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.redis_servers import _free_port
from tests.operator.conftest import Cluster, run_operator
from tests.operator.serving_metrics import Canary, fake_serving, prometheus
from vidrec.config import load_config
from vidrec.rollout.analysis import Verdict

HANDLERS = Path(__file__).resolve().parents[2] / "operators" / "rollout" / "handlers.py"
pytestmark = [pytest.mark.asyncio, pytest.mark.integration]


def rollout(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "ranker",
        "stableVersion": "1",
        "candidateVersion": "2",
        "strategy": {
            "canary": {
                "steps": [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}],
                "scaleDownDelaySeconds": 0,
            }
        },
        "analysis": {
            "interval": "3s",
            "failureLimit": 1,
            "inconclusiveLimit": 2,
            "metrics": [
                {"name": "latency-p99", "template": "latency-p99", "thresholdMax": 0.1},
                {"name": "ctr", "template": "ctr-test", "minSamples": 200},
            ],
        },
        "trafficRouter": {"type": "gateway-table"},
    }
    spec.update(overrides)
    return spec


@pytest_asyncio.fixture()
async def world(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cluster]:
    """Serving series (the test's ``Canary``), Prometheus over them, and the operator."""
    async with serving_and_operator(cluster, getattr(request, "param", Canary()), tmp_path,
                                    monkeypatch):  # fmt: skip
        yield cluster


@contextlib.asynccontextmanager
async def serving_and_operator(
    cluster: Cluster,
    canary: Canary,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    share: Callable[[], float] | None = None,
) -> AsyncIterator[None]:
    """Fake serving series (``share``: the candidate's share of users, if not the canary's
    own), Prometheus scraping them, and the kopf operator with its metrics port."""
    with ExitStack() as stack:
        target = stack.enter_context(fake_serving(canary, share=share))
        url = stack.enter_context(prometheus(target, tmp_path))
        monkeypatch.setenv("VIDREC_ROLLOUT__PROMETHEUS_URL", url)
        monkeypatch.setenv("VIDREC_ROLLOUT__TICK_S", "0.5")
        port = _free_port()
        monkeypatch.setenv("VIDREC_ROLLOUT__METRICS_PORT", str(port))
        cluster.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
        async with run_operator(cluster, HANDLERS):
            yield


async def operator_series(world: Cluster, name: str) -> dict[str, float]:
    """The operator's own vidrec_rollout_* samples for one rollout, by name/phase or verdict
    (summed over the other labels)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(world.metrics_url)).text  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("rollout") == name:
                extra = sample.labels.get("phase") or sample.labels.get("verdict") or ""
                key = f"{sample.name}/{extra}".rstrip("/")
                out[key] = out.get(key, 0.0) + sample.value
    return out


def routing_weights(url: str) -> dict[str, float]:
    raw = redis.Redis.from_url(url).get(load_config({}).serving.routing_key)
    return {v["name"]: v["weight_percent"] for v in json.loads(raw or b"{}").get("variants", [])}


def phase_in(*phases: str) -> Any:
    return lambda o: o.get("status", {}).get("phase") in phases


async def test_healthy_candidate_walks_the_steps_to_succeeded(
    world: Cluster, redis_url: str
) -> None:
    name = world.unique("healthy")
    await world.create(name, rollout())
    obj = await world.wait_for(name, phase_in("Succeeded", "RolledBack", "Failed", "Paused"), 40)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status["message"]
    assert status["canaryWeight"] == 100
    assert {r["verdict"] for r in status["analysisHistory"]} == {Verdict.PASS.value}
    assert len(status["analysisHistory"]) >= 4  # two analysis steps × two metrics
    assert routing_weights(redis_url) in ({"stable": 0, "canary": 100}, {"stable": 100})
    reasons = [e["reason"] for e in await world.events(name)]
    assert "Progressing" in reasons and "Succeeded" in reasons, reasons
    series = await operator_series(world, name)
    assert series["vidrec_rollout_phase/Succeeded"] == 1.0
    assert series["vidrec_rollout_phase/Progressing"] == 0.0
    assert series["vidrec_rollout_canary_weight"] == 100.0
    assert series["vidrec_rollout_analysis_total/Pass"] >= 4


@pytest.mark.parametrize(
    ("world", "metric"),
    [(Canary(latency_s=0.3), "latency-p99"), (Canary(ctr=0.03), "ctr")],
    indirect=["world"],
    ids=["high-p99", "lower-ctr"],
)
async def test_bad_candidate_is_rolled_back_with_the_metric_named(
    world: Cluster, redis_url: str, metric: str
) -> None:
    name = world.unique("bad")
    await world.create(name, rollout())
    obj = await world.wait_for(name, phase_in("Succeeded", "RolledBack", "Failed", "Paused"), 30)
    status = obj["status"]
    assert status["phase"] == "RolledBack", status
    assert status["canaryWeight"] == 0
    assert metric in status["message"], status["message"]
    assert routing_weights(redis_url).get("canary", 0) == 0
    warnings = [e for e in await world.events(name) if e["type"] == "Warning"]
    assert any(e["reason"] == "RolledBack" for e in warnings), warnings
    series = await operator_series(world, name)
    assert series["vidrec_rollout_phase/RolledBack"] == 1.0
    assert series["vidrec_rollout_canary_weight"] == 0.0
    assert series["vidrec_rollout_analysis_total/Fail"] >= 1


@pytest.mark.parametrize("world", [Canary(present=False)], indirect=True, ids=["no-data"])
async def test_no_data_pauses(world: Cluster, redis_url: str) -> None:
    name = world.unique("nodata")
    await world.create(name, rollout())
    obj = await world.wait_for(name, phase_in("Succeeded", "RolledBack", "Failed", "Paused"), 30)
    status = obj["status"]
    assert status["phase"] == "Paused", status
    assert status["canaryWeight"] == 20  # held where it was, not rolled back
    assert {r["verdict"] for r in status["analysisHistory"]} == {Verdict.INCONCLUSIVE.value}


async def test_cli_abort_rolls_back_at_once_and_status_shows_it(
    world: Cluster, redis_url: str
) -> None:
    from typer.testing import CliRunner

    from vidrec.rollout.cli import rollout_app
    from vidrec.rollout.operator import COMMAND_ANNOTATION

    name = world.unique("abort")
    steps = [{"setWeight": 30}, {"pause": {}}]  # holds at 30% until a person acts
    await world.create(name, rollout(strategy={"canary": {"steps": steps}}))
    await world.wait_for(name, lambda o: o.get("status", {}).get("canaryWeight") == 30)
    cli = CliRunner()
    result = await asyncio.to_thread(
        cli.invoke, rollout_app, ["abort", name, "-n", world.namespace]
    )
    assert result.exit_code == 0, result.output
    obj = await world.wait_for(name, phase_in("RolledBack"), 10, what="RolledBack")
    assert obj["status"]["canaryWeight"] == 0 and "abort" in obj["status"]["message"]
    assert COMMAND_ANNOTATION not in obj["metadata"].get("annotations", {})  # consumed
    assert routing_weights(redis_url).get("canary", 0) == 0
    shown = await asyncio.to_thread(
        cli.invoke, rollout_app, ["status", name, "-n", world.namespace]
    )
    assert shown.exit_code == 0 and "RolledBack" in shown.output, shown.output
    missing = await asyncio.to_thread(
        cli.invoke, rollout_app, ["status", "nope", "-n", world.namespace]
    )
    assert missing.exit_code == 1 and "404" in missing.output
