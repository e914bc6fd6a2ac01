"""Rollouts end to end on the local stack: Redis Cluster, Triton serving four ranker versions,
the BentoML Recommender under live API traffic, the event processor counting what users do,
and the stack's own Prometheus judging it.

Version 2 is the trained ranker itself (a healthy candidate); version 3 answers the same scores
250 ms late (a slower candidate: a sleep, so it does not steal CPU from the stable version on
two shared cores); version 4 inverts every score, so it serves the feed's worst candidates
first (a lower-quality candidate). Traffic is simulated users (:class:`vidrec.data.audience.
Audience`, the simulator's outcome model) who click and watch what they are actually served,
posting those events to the API like a client app. ``vidrec rollout run --local``'s engine
promotes 1 → 2, then rolls 2 → 3 back on latency and 2 → 4 back on CTR as canaries; as
blue-green previews (a sticky share of users on the candidate, analysed, then all at once)
it switches 2 → 1 (the same trained ranker) and rolls 1 → 4 back on CTR.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.integration.settings import SLOW_MACHINE
from tests.integration.test_serving_stack import full_config
from vidrec.config import load_config
from vidrec.data.audience import Audience
from vidrec.models import load_models
from vidrec.offline.build import EvalSample
from vidrec.offline.profiles import get_profile
from vidrec.offline.run import sim_config
from vidrec.ranking.export import export_ranker_onnx
from vidrec.rollout.local import run_local
from vidrec.rollout.operator import OperatorSettings, TickResult
from vidrec.rollout.routers import ROUTERS, RouteTarget
from vidrec_dev.stack import Stack, read_stack_state

pytestmark = pytest.mark.integration
SERVICES = {"redis", "prepare", "triton", "retrieval", "features", "recommender", "process",
            "prometheus"}  # fmt: skip
SLOW_MODEL_PY = """

# --- rollout e2e: the same model, 250 ms late -------------------------------------------
import time as _time

_execute = TritonPythonModel.execute


def _late(self, requests):
    _time.sleep(0.25)
    return _execute(self, requests)


TritonPythonModel.execute = _late
"""


class Inverted(nn.Module):
    """1 - p for every head: the same model ranking the feed upside down."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = 1.0 - self.inner(x)
        return out


@pytest.fixture(scope="module")
def candidates(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test artefacts with ranker versions 2 (healthy), 3 (slow), 4 (worse) beside 1."""
    root = tmp_path_factory.mktemp("rollout-e2e") / "artefacts"
    shutil.copytree(artefacts, root)
    ranker = root / "model_repository" / "ranker"
    shutil.copytree(ranker / "1", ranker / "2")
    shutil.copytree(ranker / "1", ranker / "3")
    with (ranker / "3" / "model.py").open("a") as f:
        f.write(SLOW_MODEL_PY)
    (ranker / "4").mkdir()
    shutil.copy(ranker / "1" / "model.py", ranker / "4" / "model.py")
    serving = load_models(root / "models").ranker.serving
    width = EvalSample.load(root / "models").ranker_x.shape[1]
    export_ranker_onnx(Inverted(serving), width, ranker / "4" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def stack(candidates: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    saved = dict(os.environ)
    cfg = full_config(tmp_path_factory.mktemp("rollout-stack"))
    s = Stack(cfg, candidates)
    try:
        os.environ.update(SLOW_MACHINE)
        s.up(only=SERVICES, progress=False)
        state = read_stack_state(s.run_dir)
        assert state is not None
        os.environ.update(  # this process runs the rollout engine against the same stack
            VIDREC_REDIS__URL=state.env["VIDREC_REDIS__URL"], VIDREC_REDIS__CLUSTER="true"
        )
        yield s
    finally:
        s.down()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def audience(candidates: Path) -> Audience:
    sim = sim_config(get_profile("test"), seed=7)  # the run that built the test artefacts
    return Audience.of(load_config({}).data.kuairec_dir, sim, seed=1)


@pytest.fixture(scope="module")
def traffic(stack: Stack, audience: Audience) -> Iterator[dict[str, int]]:
    """Simulated users, continuously, from two threads: each asks for a home feed, then clicks
    and watches what it was served and posts those events, as a client app would."""
    state = read_stack_state(stack.run_dir)
    assert state is not None
    base = f"{state.url('recommender')}/api/v1"
    users = audience.user_ids
    now_ms = audience.sim.end_ts
    stop, lock = threading.Event(), threading.Lock()
    counts = {"feeds": 0, "events": 0, "errors": 0}

    def user_loop(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                user = int(users[rng.integers(len(users))])
                feed = client.get(f"{base}/recommendations/home", params={"user_id": user})
                if feed.status_code != 200:
                    with lock:
                        counts["errors"] += 1
                    continue
                body: dict[str, Any] = feed.json()
                videos = [item["video_id"] for item in body["items"]]
                events = audience_respond(audience, lock, user, videos, body["request_id"], now_ms)
                if events:
                    posted = client.post(f"{base}/events/engagement", json=events)
                    with lock:
                        counts["errors"] += posted.status_code >= 300
                        counts["events"] += len(events)
                with lock:
                    counts["feeds"] += 1
                stop.wait(0.1)  # a person reads the feed: ~10 feeds/s, leaves CPU to the stack

    threads = [threading.Thread(target=user_loop, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    yield counts
    stop.set()
    for t in threads:
        t.join(timeout=30)


def audience_respond(
    audience: Audience, lock: threading.Lock, user: int, videos: list[int], rid: str, ts: int
) -> list[dict[str, Any]]:
    with lock:  # one random stream, shared by the two client threads
        return audience.respond(user, videos, rid, ts)


METRICS = {
    "latency": {"name": "latency", "template": "latency-mean-ratio", "thresholdMax": 1.5},
    # Same model ⇒ p-values are uniform: 0.01, and two failures to roll back, keep a healthy
    # candidate's false alarm rare; an inverted ranker's p-value is far below it.
    "ctr": {"name": "ctr", "template": "ctr-test", "thresholdMin": 0.01, "minSamples": 300},
}


CANARY = {
    "canary": {
        "steps": [{"setWeight": 50}, {"analysis": {}}, {"analysis": {}}],
        "scaleDownDelaySeconds": 0,
    }
}
PREVIEW, AUTO_PROMOTION_S = 30, 30
# The preview's users are what the analysis sees; it switches once a run has passed and
# AUTO_PROMOTION_S are up (after the first 20 s window, before the second).
BLUE_GREEN = {
    "blueGreen": {
        "previewWeight": PREVIEW,
        "autoPromotionSeconds": AUTO_PROMOTION_S,
        "prePromotionAnalysis": True,
        "scaleDownDelaySeconds": 0,
    }
}


def manifest(
    tmp: Path,
    name: str,
    stable: str,
    candidate: str,
    metrics: list[str],
    strategy: dict[str, Any] = CANARY,
) -> Path:
    spec = {
        "model": "ranker",
        "stableVersion": stable,
        "candidateVersion": candidate,
        "strategy": strategy,
        "analysis": {
            "interval": "20s",
            "failureLimit": 2,
            "inconclusiveLimit": 6,
            "metrics": [METRICS[m] for m in metrics],
        },
        "trafficRouter": {"type": "gateway-table"},
    }
    doc = {"apiVersion": "vidrec.io/v1alpha1", "kind": "ModelRollout",
           "metadata": {"name": name}, "spec": spec}  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(stack: Stack, path: Path, tmp: Path) -> tuple[TickResult, list[str]]:
    cfg = stack.cfg
    settings = OperatorSettings(
        tick_s=1.0,
        prometheus_url=f"http://127.0.0.1:{cfg.stack.prometheus_port}",
        triton_url=f"http://127.0.0.1:{cfg.triton.http_port}",
    )
    start, timeline = time.monotonic(), []

    def record(result: TickResult) -> None:
        for e in result.events:
            timeline.append(f"{time.monotonic() - start:6.1f}s {e.reason}: {e.message}")
        for r in result.results:
            value = "no data" if r.value is None else f"{r.value:.4g}"
            timeline.append(f"{time.monotonic() - start:6.1f}s   {r.metric} = {value}: {r.verdict}")

    final = run_local(path, tmp / "rollouts", settings=settings, timeout_s=240, on_tick=record)
    print(f"\n--- {path.stem} ---\n" + "\n".join(timeline))
    return final, timeline


def test_promoted_when_healthy_rolled_back_when_slower_or_worse(
    stack: Stack, traffic: dict[str, int], tmp_path: Path
) -> None:
    good, _ = run(stack, manifest(tmp_path, "ranker-v2", "1", "2", ["latency", "ctr"]), tmp_path)
    assert good.phase == "Succeeded", good.status.get("message")
    assert good.status["canaryWeight"] == 100

    slow, _ = run(stack, manifest(tmp_path, "ranker-v3", "2", "3", ["latency"]), tmp_path)
    assert slow.phase == "RolledBack", slow.status.get("message")
    assert slow.status["canaryWeight"] == 0
    assert "latency" in slow.status["message"]

    worse, _ = run(stack, manifest(tmp_path, "ranker-v4", "2", "4", ["ctr"]), tmp_path)
    assert worse.phase == "RolledBack", worse.status.get("message")
    assert worse.status["canaryWeight"] == 0
    assert "ctr" in worse.status["message"]
    assert traffic["feeds"] > 0 and traffic["events"] > 0, traffic
    assert traffic["errors"] == 0, traffic


def live_weights(stable: str, candidate: str) -> tuple[int, int]:
    """(stable, candidate) as the routing table in the stack's Redis Cluster says now."""
    return ROUTERS["gateway-table"](RouteTarget("ranker", stable, candidate)).get_weights()


def test_blue_green_switches_after_a_passing_preview_and_rolls_back_a_worse_one(
    stack: Stack, traffic: dict[str, int], tmp_path: Path
) -> None:
    """Version 1 is the trained ranker again (stable 2 may already be serving alone after the
    canary test), so whichever test ran first, both rollouts start from a loaded stable."""
    path = manifest(tmp_path, "ranker-bg-1", "2", "1", ["latency", "ctr"], BLUE_GREEN)
    good, timeline = run(stack, path, tmp_path)
    status = good.status
    assert good.phase == "Succeeded", status.get("message")
    assert status["canaryWeight"] == 100 and live_weights("2", "1") == (0, 100)
    assert any(f"WeightChanged: Candidate weight 0% → {PREVIEW}%" in line for line in timeline)
    promoted = unix(status["stepStartedAt"])
    assert promoted - unix(status["loadedAt"]) >= AUTO_PROMOTION_S
    before = [r for r in status["analysisHistory"] if unix(r["time"]) <= promoted]
    assert before and all(r["verdict"] == "Pass" for r in before[-2:]), before  # latest run

    path = manifest(tmp_path, "ranker-bg-4", "1", "4", ["ctr"], BLUE_GREEN)
    worse, timeline = run(stack, path, tmp_path)
    status = worse.status
    assert worse.phase == "RolledBack", status.get("message")
    assert status["canaryWeight"] == 0 and live_weights("1", "4") == (100, 0)
    assert "ctr" in status["message"] and status["failedChecks"] == 2
    assert not any("Promoting" in line for line in timeline), timeline  # held past 30 s
    assert traffic["errors"] == 0, traffic


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
