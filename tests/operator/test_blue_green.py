"""Blue-green through the operator: kopf in-process against the API server (kmock, or the
cluster in KUBECONFIG), the gateway-table router on a REAL redis-server, and a REAL
Prometheus over serving series that follow that routing table — the candidate has users,
and so data, only while the operator routes a preview share to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.operator.conftest import Cluster
from tests.operator.serving_metrics import Canary
from tests.operator.test_handlers import (
    operator_series,
    phase_in,
    rollout,
    routing_weights,
    serving_and_operator,
)
from vidrec.rollout.analysis import Verdict

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]
PREVIEW, INTERVAL_S, AUTO_PROMOTION_S = 20, 4, 6
ENDED = phase_in("Succeeded", "RolledBack", "Failed", "Paused")


def blue_green(preview_weight: int = PREVIEW) -> dict[str, Any]:
    spec = rollout(
        strategy={
            "blueGreen": {
                "previewWeight": preview_weight,
                "autoPromotionSeconds": AUTO_PROMOTION_S,
                "prePromotionAnalysis": True,
                "scaleDownDelaySeconds": 0,
            }
        }
    )
    spec["analysis"] = {
        "interval": f"{INTERVAL_S}s",
        "failureLimit": 1,
        "inconclusiveLimit": 2,
        "metrics": [
            {"name": "latency-p99", "template": "latency-p99", "thresholdMax": 0.1},
            {"name": "ctr", "template": "ctr-test", "minSamples": 100},
        ],
    }
    return spec


@pytest_asyncio.fixture()
async def world(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cluster]:
    """Users split by the live routing table (the test's ``Canary`` on the candidate's share),
    Prometheus over their series, and the operator."""
    share = lambda: routing_weights(redis_url).get("canary", 0) / 100  # noqa: E731
    canary: Canary = getattr(request, "param", Canary())
    async with serving_and_operator(cluster, canary, tmp_path, monkeypatch, share=share):
        yield cluster


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_healthy_candidate_is_previewed_then_promoted(world: Cluster, redis_url: str) -> None:
    name = world.unique("bg-healthy")
    await world.create(name, blue_green())
    previewing = await world.wait_for(
        name, lambda o: o.get("status", {}).get("canaryWeight") == PREVIEW, what="preview"
    )
    assert previewing["status"]["phase"] == "Progressing"
    assert "waiting for pre-promotion analysis" in previewing["status"]["message"]
    assert routing_weights(redis_url) == {"stable": 100 - PREVIEW, "canary": PREVIEW}

    obj = await world.wait_for(name, ENDED, 40)
    status = obj["status"]
    assert status["phase"] == "Succeeded", status["message"]
    assert status["canaryWeight"] == 100
    history = status["analysisHistory"]
    assert len(history) >= 2 and {r["verdict"] for r in history} == {Verdict.PASS.value}
    loaded = unix(status["loadedAt"])
    assert unix(history[0]["time"]) - loaded >= INTERVAL_S  # a full window of preview users
    assert unix(status["stepStartedAt"]) - loaded >= AUTO_PROMOTION_S  # switched, not early
    assert routing_weights(redis_url) in ({"stable": 0, "canary": 100}, {"stable": 100})
    events = await world.events(name)
    reasons = [e["reason"] for e in events]
    assert reasons == ["Progressing", "CandidateLoaded", "WeightChanged", "Promoting",
                       "Succeeded"], reasons  # fmt: skip
    assert f"0% → {PREVIEW}%" in events[2]["message"]
    assert "preview analysis passed, auto-promotion time reached" in events[3]["message"]
    series = await operator_series(world, name)
    assert series["vidrec_rollout_phase/Succeeded"] == 1.0
    assert series["vidrec_rollout_canary_weight"] == 100.0
    assert series["vidrec_rollout_analysis_total/Pass"] >= 2


@pytest.mark.parametrize(
    ("world", "metric"),
    [(Canary(latency_s=0.3), "latency-p99"), (Canary(ctr=0.03), "ctr")],
    indirect=["world"],
    ids=["high-p99", "lower-ctr"],
)
async def test_bad_candidate_is_rolled_back_from_the_preview(
    world: Cluster, redis_url: str, metric: str
) -> None:
    name = world.unique("bg-bad")
    await world.create(name, blue_green())
    obj = await world.wait_for(name, ENDED, 30)
    status = obj["status"]
    assert status["phase"] == "RolledBack", status
    assert status["canaryWeight"] == 0 and status["failedChecks"] == 1
    assert metric in status["message"], status["message"]
    failed = [r for r in status["analysisHistory"] if r["verdict"] == Verdict.FAIL.value]
    assert [r["metric"] for r in failed] == [metric]
    assert routing_weights(redis_url) == {"stable": 100, "canary": 0}
    events = await world.events(name)
    reasons = [e["reason"] for e in events]
    assert "Promoting" not in reasons, reasons
    assert any(f"0% → {PREVIEW}%" in e["message"] for e in events), events  # it had users
    warnings = [e for e in events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["RolledBack"], warnings
    series = await operator_series(world, name)
    assert series["vidrec_rollout_phase/RolledBack"] == 1.0
    assert series["vidrec_rollout_canary_weight"] == 0.0
    assert series["vidrec_rollout_analysis_total/Fail"] >= 1


async def test_a_dark_preview_gives_metric_analysis_no_data_and_pauses(
    world: Cluster, redis_url: str
) -> None:
    """previewWeight 0 with Prometheus comparisons: no user reaches the candidate, so the
    analysis is inconclusive and the rollout pauses instead of promoting."""
    name = world.unique("bg-dark")
    await world.create(name, blue_green(preview_weight=0))
    obj = await world.wait_for(name, ENDED, 30)
    status = obj["status"]
    assert status["phase"] == "Paused", status
    assert status["pauseReason"] == "inconclusive" and status["canaryWeight"] == 0
    assert {r["verdict"] for r in status["analysisHistory"]} == {Verdict.INCONCLUSIVE.value}
    assert routing_weights(redis_url) == {"stable": 100, "canary": 0}
