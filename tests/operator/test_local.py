"""`vidrec rollout run --local`: the operator's tick without Kubernetes, on real Prometheus and
the Redis routing table; commands arrive through `vidrec rollout <command> --local`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from tests.integration.redis_servers import standalone_redis
from tests.operator.serving_metrics import Canary, fake_serving, prometheus
from tests.operator.test_handlers import rollout
from vidrec.config import load_config
from vidrec.contracts.routing import RoutingTable
from vidrec.rollout.local import LocalRollout, run_local
from vidrec.rollout.operator import OperatorSettings

pytestmark = pytest.mark.integration


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    with standalone_redis() as url:
        monkeypatch.setenv("VIDREC_REDIS__URL", url)
        monkeypatch.setenv("VIDREC_REDIS__CLUSTER", "false")
        yield url, str(tmp_path)


def manifest(tmp_path: Path, name: str, **overrides: object) -> Path:
    doc = {"apiVersion": "vidrec.io/v1alpha1", "kind": "ModelRollout",
           "metadata": {"name": name}, "spec": rollout(**overrides)}  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def routing(url: str) -> RoutingTable:
    raw = redis.Redis.from_url(url).get(load_config().serving.routing_key)
    assert raw is not None
    return RoutingTable.from_json(raw.decode())


@pytest.mark.parametrize(
    ("canary", "phase", "canary_weight"),
    [(Canary(), "Succeeded", 100), (Canary(latency_s=0.5), "RolledBack", 0)],
    ids=["healthy", "slow"],
)
def test_local_rollout_promotes_a_healthy_candidate_and_rolls_back_a_slow_one(
    env: tuple[str, str], tmp_path: Path, canary: Canary, phase: str, canary_weight: int
) -> None:
    url, _ = env
    with fake_serving(canary) as target, prometheus(target, tmp_path) as prom:
        settings = OperatorSettings(tick_s=0.5, prometheus_url=prom, triton_url="")
        seen: list[str] = []
        path = manifest(tmp_path, "local-" + phase.lower())
        final = run_local(path, tmp_path / "rollouts", settings=settings, timeout_s=120,
                          on_tick=lambda r: seen.extend(e.reason for e in r.events))  # fmt: skip
    assert final.phase == phase, final.status.get("message")
    assert final.status["canaryWeight"] == canary_weight
    assert phase in seen  # every transition is reported
    weights = {v.name: v.weight_percent for v in routing(url).variants}
    assert weights.get("canary", 0) == canary_weight or weights.get("stable") == 100


def test_local_abort_command_rolls_back_at_once(env: tuple[str, str], tmp_path: Path) -> None:
    steps = [{"setWeight": 30}, {"pause": {}}]  # holds at 30% until a person acts
    path = manifest(tmp_path, "local-abort", strategy={"canary": {"steps": steps}})
    local = LocalRollout("local-abort", tmp_path / "rollouts")
    with fake_serving(Canary()) as target, prometheus(target, tmp_path) as prom:
        settings = OperatorSettings(tick_s=0.5, prometheus_url=prom, triton_url="")
        ticks = 0

        def abort_after_a_few(_: object) -> None:
            nonlocal ticks
            ticks += 1
            if ticks == 4:
                local.send("abort")

        final = run_local(path, local.directory, settings=settings, timeout_s=60,
                          on_tick=abort_after_a_few)  # fmt: skip
    assert final.phase == "RolledBack" and final.status["canaryWeight"] == 0
    assert not local.command_file.exists()  # consumed
    assert local.read_status() == final.status
