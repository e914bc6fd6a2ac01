"""A rollout end to end on the local stack: Redis Cluster, Triton serving three ranker versions,
the BentoML Recommender under live API traffic, and the stack's own Prometheus judging it.

Version 2 is the trained ranker itself (a healthy candidate); version 3 computes the same scores
three hundred times over (a deliberately slower candidate). `vidrec rollout run --local`'s engine
promotes 1 → 2 and then rolls 2 → 3 back on latency, moving real users between variants
through the Redis routing table.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
import yaml
from torch import nn

from tests.integration.settings import SLOW_MACHINE
from tests.integration.test_serving_stack import full_config
from vidrec.models import load_models
from vidrec.offline.build import EvalSample
from vidrec.ranking.export import export_ranker_onnx
from vidrec.rollout.local import run_local
from vidrec.rollout.operator import OperatorSettings, TickResult
from vidrec.stack import Stack, read_stack_state

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("VIDREC_E2E") != "1",
        reason="opt-in (VIDREC_E2E=1): a 2-3 min run whose p99 gate is still noisy on two shared"
        " cores (it passed 2 of 5 runs while tuning); the operator tests cover the gates",
    ),
]
SERVICES = {"redis", "prepare", "triton", "retrieval", "features", "recommender", "prometheus"}


class Slower(nn.Module):
    """(Almost) the same scores, computed ``repeats`` times: a candidate that is only slower.

    Each repeat sees the input shifted by a distinct 1e-6·i, so ONNX Runtime's common
    subexpression elimination cannot merge the copies back into one."""

    def __init__(self, inner: nn.Module, repeats: int) -> None:
        super().__init__()
        self.inner, self.repeats = inner, repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        for i in range(1, self.repeats):
            out = (out + self.inner(x + 1e-6 * i)) / 2
        return out


@pytest.fixture(scope="module")
def two_candidates(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test artefacts with ranker versions 2 (healthy) and 3 (slow) beside version 1."""
    root = tmp_path_factory.mktemp("rollout-e2e") / "artefacts"
    shutil.copytree(artefacts, root)
    ranker = root / "model_repository" / "ranker"
    shutil.copytree(ranker / "1", ranker / "2")
    (ranker / "3").mkdir()
    shutil.copy(ranker / "1" / "model.py", ranker / "3" / "model.py")
    serving = load_models(root / "models").ranker.serving
    width = EvalSample.load(root / "models").ranker_x.shape[1]
    export_ranker_onnx(Slower(serving, 300), width, ranker / "3" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def stack(two_candidates: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    saved = dict(os.environ)
    cfg = full_config(tmp_path_factory.mktemp("rollout-stack"))
    s = Stack(cfg, two_candidates)
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
def traffic(stack: Stack) -> Iterator[None]:
    """Home feeds for random users, continuously, from two client threads."""
    state = read_stack_state(stack.run_dir)
    assert state is not None
    url = f"{state.url('recommender')}/api/v1/recommendations/home"
    stop = threading.Event()

    def user_loop(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.get(url, params={"user_id": rng.randrange(2000), "count": 10})

    threads = [threading.Thread(target=user_loop, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    yield
    stop.set()
    for t in threads:
        t.join(timeout=30)


def manifest(tmp: Path, name: str, stable: str, candidate: str) -> Path:
    spec = {
        "model": "ranker",
        "stableVersion": stable,
        "candidateVersion": candidate,
        "strategy": {
            "canary": {"steps": [{"setWeight": 50}, {"analysis": {}}], "scaleDownDelaySeconds": 0}
        },
        "analysis": {
            "interval": "15s",
            "failureLimit": 2,
            "inconclusiveLimit": 6,
            "metrics": [{"name": "latency", "template": "latency-p99-ratio", "thresholdMax": 3.0}],
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

    final = run_local(path, tmp / "rollouts", settings=settings, timeout_s=240, on_tick=record)
    print("\n".join(timeline))
    return final, timeline


@pytest.mark.usefixtures("traffic")
def test_healthy_candidate_is_promoted_then_slow_one_rolled_back(
    stack: Stack, tmp_path: Path
) -> None:
    good, _ = run(stack, manifest(tmp_path, "ranker-v2", "1", "2"), tmp_path)
    assert good.phase == "Succeeded", good.status.get("message")
    assert good.status["canaryWeight"] == 100

    slow, timeline = run(stack, manifest(tmp_path, "ranker-v3", "2", "3"), tmp_path)
    assert slow.phase == "RolledBack", slow.status.get("message")
    assert slow.status["canaryWeight"] == 0
    assert "latency" in slow.status["message"]
    assert any("RolledBack" in line for line in timeline)
