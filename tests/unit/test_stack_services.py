"""Stack specs from config: order, ports, environment, and the generated prometheus.yml
(validated by the real ``promtool``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.needs import require_binary
from vidrec.config import Config, load_config
from vidrec_dev.stack import prometheus
from vidrec_dev.stack.health import HttpCheck, RedisCheck
from vidrec_dev.stack.process import ServiceSpec, StackError
from vidrec_dev.stack.runner import Stack
from vidrec_dev.stack.services import build_plan, redis_spec, scrape_targets


@pytest.fixture
def promtool() -> None:
    """The real ``promtool`` (a CLI, not a server): skipped locally, failed under CI if absent."""
    require_binary(prometheus.PROMTOOL, "apt-get install prometheus")


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    (tmp_path / "art" / "model_repository").mkdir(parents=True)
    return tmp_path / "art"


def config(tmp_path: Path, env: dict[str, str] | None = None) -> Config:
    cfg = load_config(env or {})
    return dataclasses.replace(cfg, stack=dataclasses.replace(cfg.stack, run_dir=tmp_path / "run"))


def specs(cfg: Config, artefacts: Path) -> dict[str, ServiceSpec]:
    return {s.name: s for wave in build_plan(cfg, artefacts) for s in wave}


def test_plan_starts_in_dependency_order(tmp_path: Path, artefacts: Path) -> None:
    waves = [[s.name for s in wave] for wave in build_plan(config(tmp_path), artefacts)]
    assert waves == [
        ["redis"],
        ["prepare"],
        ["triton"],
        ["retrieval", "features"],
        ["recommender", "grpc", "process", "lake"],
        ["prometheus"],
    ]
    started: set[str] = set()
    for wave in build_plan(config(tmp_path), artefacts):
        for spec in wave:
            assert set(spec.depends_on) <= started, f"{spec.name} starts before its dependencies"
        started |= {s.name for s in wave}


def test_building_the_plan_has_no_side_effects(tmp_path: Path, artefacts: Path) -> None:
    build_plan(config(tmp_path), artefacts)
    assert not (tmp_path / "run").exists()


def test_every_port_comes_from_the_environment(tmp_path: Path, artefacts: Path) -> None:
    env = {
        "VIDREC_STACK__REDIS_BASE_PORT": "17001",
        "VIDREC_STACK__PROMETHEUS_PORT": "19090",
        "VIDREC_TRITON__HTTP_PORT": "18000",
        "VIDREC_TRITON__GRPC_PORT": "18001",
        "VIDREC_TRITON__METRICS_PORT": "18002",
        "VIDREC_SERVING__RECOMMENDER_PORT": "13000",
        "VIDREC_SERVING__RETRIEVAL_PORT": "13001",
        "VIDREC_SERVING__FEATURES_PORT": "13002",
        "VIDREC_SERVING__GRPC_PORT": "15051",
    }
    s = specs(config(tmp_path, env), artefacts)
    assert s["redis"].ports == (17001, 17002, 17003, 27001, 27002, 27003)  # + cluster bus
    assert s["triton"].ports == (18000, 18001, 18002)
    assert s["prometheus"].ports == (19090,)
    assert s["retrieval"].ports == (13001,) and s["features"].ports == (13002,)
    assert s["recommender"].ports == (13000,) and s["grpc"].ports[0] == 15051
    assert "--web.listen-address=127.0.0.1:19090" in s["prometheus"].argv
    for spec in s.values():
        for arg in spec.argv:
            assert "0.0.0.0" not in arg, f"{spec.name} binds beyond 127.0.0.1"


def test_redis_cluster_launcher_creates_three_masters(tmp_path: Path) -> None:
    spec = redis_spec(config(tmp_path), tmp_path / "run")
    script = spec.argv[-1]
    assert script.count("--cluster-enabled yes") == 3
    assert "--cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003" in script
    assert "--cluster-yes" in script and "--cluster-replicas 0" in script
    assert str(tmp_path / "run" / "redis") in script
    assert spec.health == RedisCheck((7001, 7002, 7003), cluster=True)
    assert spec.url == "redis://127.0.0.1:7001/0"


def test_standalone_redis_is_one_server(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"VIDREC_STACK__REDIS_CLUSTER": "false"})
    spec = redis_spec(cfg, tmp_path / "run")
    assert spec.argv[0].endswith("redis-server") and "--cluster-enabled" not in spec.argv
    assert spec.ports == (7001,)
    assert spec.health == RedisCheck((7001,), cluster=False)


def test_the_lean_host_serves_the_api_by_default(tmp_path: Path, artefacts: Path) -> None:
    rec = specs(config(tmp_path), artefacts)["recommender"]
    assert "vidrec.api.http_server" in rec.argv and "serve" not in rec.argv
    assert rec.argv[rec.argv.index("--port") + 1] == "3000"
    assert rec.health == HttpCheck("http://127.0.0.1:3000/api/v1/health")
    assert "recommender_bentoml" not in scrape_targets(config(tmp_path))


def test_bento_services_find_each_other_by_url(tmp_path: Path, artefacts: Path) -> None:
    s = specs(config(tmp_path, {"VIDREC_SERVING__HTTP_HOST": "bentoml"}), artefacts)
    rec = s["recommender"]
    i = rec.argv.index("serve")
    assert rec.argv[i + 1 :] == (
        "bentos/recommender/service.py:Recommender",
        *("--host", "127.0.0.1", "--port", "3000"),
    )
    assert rec.env["VIDREC_SERVING__RETRIEVAL_URL"] == "http://127.0.0.1:3001"
    assert rec.env["VIDREC_REDIS__URL"] == "redis://127.0.0.1:7001/0"
    assert rec.env["VIDREC_REDIS__CLUSTER"] == "true"
    assert rec.env["VIDREC_SERVING__ARTEFACTS_DIR"] == str(artefacts.resolve())
    assert rec.env["VIDREC_TRITON__GRPC_PORT"] == "8001"
    assert set(rec.depends_on) == {"retrieval", "features", "triton"}
    assert s["retrieval"].argv[-5:] == (
        "bentos/recommender/service.py:Retrieval",
        *("--host", "127.0.0.1", "--port", "3001"),
    )
    assert s["retrieval"].health == HttpCheck("http://127.0.0.1:3001/readyz")
    grpc = s["grpc"].argv
    assert "vidrec.api.grpc_server" in grpc and grpc[grpc.index("--port") + 1] == "50051"
    assert "--metrics-port" in grpc


def test_triton_uses_explicit_model_control_with_the_ranker(
    tmp_path: Path, artefacts: Path
) -> None:
    spec = specs(config(tmp_path), artefacts)["triton"]
    assert "--model-control-mode=explicit" in spec.argv and "--load-model=ranker" in spec.argv
    assert f"--model-repository={(artefacts / 'model_repository').resolve()}" in spec.argv
    assert "--http-address=127.0.0.1" in spec.argv
    assert "LD_LIBRARY_PATH" in spec.env  # only what differs from the caller's environment
    assert spec.health == HttpCheck("http://127.0.0.1:8000/v2/models/ranker/ready")


def test_missing_model_repository_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="vidrec pipeline run"):
        build_plan(config(tmp_path), tmp_path / "nowhere")


def test_unknown_service_and_missing_dependency_are_refused(
    tmp_path: Path, artefacts: Path
) -> None:
    stack = Stack(config(tmp_path), artefacts)
    with pytest.raises(StackError, match=r"unknown service.*redsi.*choose from: redis"):
        stack.up(only={"redsi"}, progress=False)
    with pytest.raises(StackError, match=r"recommender needs .*add it to --only"):
        stack.up(only={"recommender"}, progress=False)
    assert not (tmp_path / "run" / "pids").exists()


def test_prometheus_scrapes_every_metrics_endpoint(tmp_path: Path) -> None:
    targets = scrape_targets(config(tmp_path, {"VIDREC_SERVING__HTTP_HOST": "bentoml"}))
    assert targets["triton"] == "http://127.0.0.1:8002/metrics"
    # vidrec's own metrics are under the API prefix: BentoML keeps /metrics for its own.
    assert targets["recommender"] == "http://127.0.0.1:3000/api/v1/metrics"
    assert targets["recommender_bentoml"] == "http://127.0.0.1:3000/metrics"
    assert {"retrieval", "features", "grpc", "prometheus"} <= set(targets)


def test_durations() -> None:
    assert prometheus.duration(2.0) == "2s"
    assert prometheus.duration(1.5) == "1500ms"
    with pytest.raises(ValueError, match="positive"):
        prometheus.duration(0)


@pytest.mark.usefixtures("promtool")
def test_generated_prometheus_yml_passes_promtool(tmp_path: Path, artefacts: Path) -> None:
    spec = specs(config(tmp_path, {"VIDREC_STACK__SCRAPE_INTERVAL_S": "0.5"}), artefacts)
    assert spec["prometheus"].setup is not None
    spec["prometheus"].setup()  # writes the file and runs `promtool check config`
    text = (tmp_path / "run" / "prometheus" / "prometheus.yml").read_text()
    assert "scrape_interval: 500ms" in text
    for job in ("recommender", "retrieval", "features", "grpc", "triton"):
        assert f'job_name: "{job}"' in text


@pytest.mark.usefixtures("promtool")
def test_promtool_rejection_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "prometheus.yml"
    with pytest.raises(StackError, match="promtool rejected"):
        prometheus.write_config(bad, "global:\n  scrape_interval: soon\n")
