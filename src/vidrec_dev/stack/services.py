"""The local stack's services as :class:`ServiceSpec` data, built from :class:`Config`.

Building specs has no side effects (files are written by each spec's ``setup`` at start), so
ports, environment and order are unit-testable. The plan is a list of *waves*; a wave starts
together and is waited on before the next:

    redis → prepare → triton → retrieval, features → recommender, grpc → prometheus

Every server binds 127.0.0.1; every port comes from the config (``VIDREC_*`` variables).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from functools import partial
from pathlib import Path

from vidrec.config import REPO_ROOT, Config
from vidrec.ranking.triton_process import TritonPorts, prepare_backend_dir, triton_command
from vidrec_dev.stack import prometheus
from vidrec_dev.stack.health import ExitCheck, GrpcCheck, HttpCheck, RedisCheck
from vidrec_dev.stack.process import ServiceSpec, StackError

HOST = "127.0.0.1"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
CLUSTER_MASTERS = 3
CLUSTER_BUS_OFFSET = 10_000  # a cluster node also listens on port + 10000
LEAN_HTTP_MODULE = "vidrec.api.http_server"
BENTO_SERVICE_FILE = "bentos/recommender/service.py"
GRPC_MODULE = "vidrec.api.grpc_server"
# Where `prepare_serving` may live (the brief said state; it landed in prepare): first wins.
SERVICE_NAMES = (
    "redis",
    "prepare",
    "triton",
    "retrieval",
    "features",
    "recommender",
    "grpc",
    "process",
    "lake",
    "prometheus",
)

Plan = list[tuple[ServiceSpec, ...]]


def redis_ports(cfg: Config) -> tuple[int, ...]:
    n = CLUSTER_MASTERS if cfg.stack.redis_cluster else 1
    return tuple(cfg.stack.redis_base_port + i for i in range(n))


def redis_url(cfg: Config) -> str:
    return f"redis://{HOST}:{cfg.stack.redis_base_port}/0"


def http_url(port: int, path: str = "") -> str:
    return f"http://{HOST}:{port}{path}"


def stack_env(cfg: Config, artefacts_dir: Path) -> dict[str, str]:
    """``VIDREC_*`` settings every vidrec process in the stack needs to find the others."""
    s, t = cfg.serving, cfg.triton
    return {
        "VIDREC_REDIS__URL": redis_url(cfg),
        "VIDREC_REDIS__CLUSTER": "true" if cfg.stack.redis_cluster else "false",
        "VIDREC_SERVING__ARTEFACTS_DIR": str(artefacts_dir.resolve()),
        "VIDREC_SERVING__RETRIEVAL_URL": http_url(s.retrieval_port),
        "VIDREC_SERVING__RECOMMENDER_PORT": str(s.recommender_port),
        "VIDREC_SERVING__RETRIEVAL_PORT": str(s.retrieval_port),
        "VIDREC_SERVING__FEATURES_PORT": str(s.features_port),
        "VIDREC_SERVING__GRPC_PORT": str(s.grpc_port),
        "VIDREC_TRITON__HOST": HOST,
        "VIDREC_TRITON__GRPC_PORT": str(t.grpc_port),
        "VIDREC_TRITON__HTTP_PORT": str(t.http_port),
        "VIDREC_TRITON__MODEL_NAME": t.model_name,
    }


def _redis_server_args(port: int, data_dir: Path, cluster: bool) -> list[str]:
    args = [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--dir", str(data_dir)]
    args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
    return args


def cluster_script(ports: tuple[int, ...], data_dir: Path) -> str:
    """Shell: start the masters, wait for PING, create the cluster, then wait on the masters.

    One launcher process keeps the whole cluster in one process group, so one stop ends it.
    """
    q = shlex.join
    starts = [f'{q(_redis_server_args(p, data_dir, True))} & pids="$pids $!"' for p in ports]
    nodes = [f"{HOST}:{p}" for p in ports]
    create = [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
    return "\n".join(
        [
            "set -e",
            'pids=""',
            *starts,
            f"for port in {' '.join(map(str, ports))}; do",
            f'  until {q([REDIS_CLI, "-h", HOST])} -p "$port" ping >/dev/null 2>&1; do',
            '    for pid in $pids; do kill -0 "$pid" 2>/dev/null || '
            '{ echo "a redis-server exited during startup" >&2; exit 1; }; done',
            "    sleep 0.1",
            "  done",
            "done",
            q(create),
            "wait",
        ]
    )


def _fresh_dir(path: Path) -> None:
    # A cluster node refuses to join a new cluster while it remembers an old one.
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def redis_spec(cfg: Config, run_dir: Path) -> ServiceSpec:
    """A 3-master cluster (default) or one standalone server, fresh on every start."""
    ports, data_dir = redis_ports(cfg), run_dir / "redis"
    cluster = cfg.stack.redis_cluster
    if cluster:
        argv: tuple[str, ...] = ("/bin/sh", "-c", cluster_script(ports, data_dir))
        listens = ports + tuple(p + CLUSTER_BUS_OFFSET for p in ports)
    else:
        argv, listens = tuple(_redis_server_args(ports[0], data_dir, False)), ports
    return ServiceSpec(
        name="redis",
        argv=argv,
        health=RedisCheck(ports, cluster=cluster),
        cwd=run_dir,
        ports=listens,
        url=redis_url(cfg),
        setup=partial(_fresh_dir, data_dir),
    )


def prepare_spec(cfg: Config, run_dir: Path, artefacts_dir: Path) -> ServiceSpec:
    """One-shot: load the artefacts' features and session state into Redis."""
    return ServiceSpec(
        name="prepare",
        argv=(
            sys.executable,
            "-m",
            "vidrec.cli",
            "serve",
            "prepare",
            str(artefacts_dir),
            "--quiet",
        ),
        health=ExitCheck(),
        env=stack_env(cfg, artefacts_dir),
        cwd=run_dir,
        depends_on=("redis",),
    )


def triton_spec(cfg: Config, run_dir: Path, artefacts_dir: Path) -> ServiceSpec:
    t = cfg.triton
    repo = artefacts_dir / "model_repository"
    if not repo.is_dir():
        raise StackError(
            f"no Triton model repository at {repo}: build artefacts with "
            f"`vidrec pipeline run --profile test --out {artefacts_dir}` or pass --artefacts"
        )
    backend_dir = run_dir / "triton" / "backends"
    ports = TritonPorts(http=t.http_port, grpc=t.grpc_port, metrics=t.metrics_port)
    argv, env = triton_command(repo, ports, backend_dir=backend_dir, models=[t.model_name])
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    return ServiceSpec(
        name="triton",
        argv=tuple(argv),
        health=HttpCheck(http_url(t.http_port, f"/v2/models/{t.model_name}/ready")),
        env=changed,
        cwd=run_dir,
        ports=(t.http_port, t.grpc_port, t.metrics_port),
        url=http_url(t.http_port),
        setup=partial(prepare_backend_dir, backend_dir),
    )


def http_spec(
    name: str, argv: tuple[str, ...], port: int, health_path: str, env: dict[str, str],
    depends_on: tuple[str, ...],
) -> ServiceSpec:  # fmt: skip
    """A Python HTTP server of the stack on ``port``, healthy when ``health_path`` answers."""
    return ServiceSpec(
        name=name,
        argv=argv,
        health=HttpCheck(http_url(port, health_path)),
        env=env,
        cwd=REPO_ROOT,
        depends_on=depends_on,
        ports=(port,),
        url=http_url(port),
    )


def bento_spec(
    name: str,
    service_class: str,
    port: int,
    env: dict[str, str],
    depends_on: tuple[str, ...],
    run_dir: Path,
) -> ServiceSpec:
    """One BentoML service. Each gets its own BENTOML_HOME: BentoML keeps its Prometheus
    multiprocess files there, and services sharing one would report each other's metrics."""
    target = f"{BENTO_SERVICE_FILE}:{service_class}"
    env = {**env, "BENTOML_HOME": str(run_dir / "bentoml" / name)}
    argv = (sys.executable, "-m", "bentoml", "serve", target, "--host", HOST, "--port", str(port))
    return http_spec(name, argv, port, "/readyz", env, depends_on)


def recommender_spec(
    cfg: Config, env: dict[str, str], depends_on: tuple[str, ...], run_dir: Path
) -> ServiceSpec:
    """The HTTP API on the host ``serving.http_host`` names: the BentoML Recommender, or the
    same app on uvicorn alone (``vidrec.api.http_server``)."""
    port = cfg.serving.recommender_port
    if cfg.serving.http_host == "bentoml":
        return bento_spec("recommender", "Recommender", port, env, depends_on, run_dir)
    if cfg.serving.http_host != "uvicorn":
        raise StackError(
            f"serving.http_host: {cfg.serving.http_host!r} is not 'bentoml' or 'uvicorn' "
            "(VIDREC_SERVING__HTTP_HOST)"
        )
    argv = (sys.executable, "-m", LEAN_HTTP_MODULE, "--port", str(port), "--host", HOST)
    return http_spec("recommender", argv, port, "/api/v1/health", env, depends_on)


def grpc_spec(cfg: Config, env: dict[str, str]) -> ServiceSpec:
    port, metrics = cfg.serving.grpc_port, cfg.serving.grpc_metrics_port
    argv = (sys.executable, "-m", GRPC_MODULE, "--port", str(port), "--metrics-port", str(metrics))
    return ServiceSpec(
        name="grpc",
        argv=argv,
        health=GrpcCheck(port),
        env=env,
        cwd=REPO_ROOT,
        depends_on=("redis", "triton"),
        ports=(port, metrics),
        url=f"{HOST}:{port}",
    )


def event_specs(cfg: Config, env: dict[str, str], run_dir: Path) -> tuple[ServiceSpec, ...]:
    """The real-time feature processor and the lake writer: two consumer groups."""
    e = cfg.events
    lake = ("--out", str(run_dir / "lake"))
    return tuple(
        ServiceSpec(
            name=name,
            argv=(sys.executable, "-m", "vidrec.events", name, "--metrics-port", str(port), *extra),
            health=HttpCheck(http_url(port, "/metrics")),
            env=env,
            cwd=REPO_ROOT,
            depends_on=("redis", "prepare"),
            ports=(port,),
            url=http_url(port, "/metrics"),
        )
        for name, port, extra in (
            ("process", e.processor_metrics_port, ()),
            ("lake", e.lake_metrics_port, lake),
        )
    )


def scrape_targets(cfg: Config) -> dict[str, str]:
    """Every metrics endpoint of the stack, by job name (a stopped one just shows ``up 0``)."""
    s = cfg.serving
    return {
        "recommender": http_url(s.recommender_port, "/api/v1/metrics"),
        **(
            {"recommender_bentoml": http_url(s.recommender_port, "/metrics")}
            if s.http_host == "bentoml"
            else {}
        ),
        "retrieval": http_url(s.retrieval_port, "/metrics"),
        "features": http_url(s.features_port, "/metrics"),
        "grpc": http_url(cfg.serving.grpc_metrics_port, "/metrics"),
        "triton": http_url(cfg.triton.metrics_port, "/metrics"),
        "process": http_url(cfg.events.processor_metrics_port, "/metrics"),
        "lake": http_url(cfg.events.lake_metrics_port, "/metrics"),
        "prometheus": http_url(cfg.stack.prometheus_port, "/metrics"),
    }


def prometheus_spec(cfg: Config, run_dir: Path) -> ServiceSpec:
    port, home = cfg.stack.prometheus_port, run_dir / "prometheus"
    config_file = home / "prometheus.yml"
    text = prometheus.render_config(scrape_targets(cfg), cfg.stack.scrape_interval_s)
    return ServiceSpec(
        name="prometheus",
        argv=(
            prometheus.PROMETHEUS,
            f"--config.file={config_file}",
            f"--web.listen-address={HOST}:{port}",
            f"--storage.tsdb.path={home / 'data'}",
        ),
        health=HttpCheck(http_url(port, "/-/ready")),
        cwd=run_dir,
        ports=(port,),
        url=http_url(port),
        setup=partial(prometheus.write_config, config_file, text),
    )


def build_plan(cfg: Config, artefacts_dir: Path) -> Plan:
    """All services, in start waves; drop a service by leaving it out of ``Stack.up(only=)``."""
    run_dir, s = cfg.stack.run_dir, cfg.serving
    env = stack_env(cfg, artefacts_dir)
    data_deps = ("redis", "prepare")
    api_deps = ("retrieval", "features", "triton")
    waves: Plan = [
        (redis_spec(cfg, run_dir),),
        (prepare_spec(cfg, run_dir, artefacts_dir),),
        (triton_spec(cfg, run_dir, artefacts_dir),),
        (
            bento_spec("retrieval", "Retrieval", s.retrieval_port, env, data_deps, run_dir),
            bento_spec("features", "Features", s.features_port, env, data_deps, run_dir),
        ),
        (
            recommender_spec(cfg, env, api_deps, run_dir),
            grpc_spec(cfg, env),
            *event_specs(cfg, env, run_dir),
        ),
        (prometheus_spec(cfg, run_dir),),
    ]
    return [wave for wave in waves if wave]
