"""charts/vidrec checked by real tools: helm lint/template, kubernetes-validate --strict,
and assertions on the rendered manifests of each profile."""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tritonclient.grpc import model_config_pb2 as mc

from tests.chart.render import (
    BUILTIN_GROUPS,
    CHART,
    KUBERNETES_VALIDATE,
    PROFILES,
    by_kind,
    containers,
    find,
    group_of,
    helm,
    pod_specs,
    render_with,
    rendered,
)
from vidrec.config import Config, RankingConfig, load_config
from vidrec.ranking.model_repository import parse_config, write_model_repository
from vidrec_dev.stack import services

GPU = "nvidia.com/gpu"
LONG_RUNNING = ("Deployment/", "StatefulSet/", "ServingRuntime/")


@pytest.mark.parametrize("profile", list(PROFILES))
def test_helm_lint_passes_strict(profile: str) -> None:
    args = ["lint", str(CHART), "--strict"]
    for values in PROFILES[profile]:
        args += ["-f", str(values)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("profile", list(PROFILES))
def test_profile_renders_the_expected_objects(profile: str) -> None:
    docs = rendered(profile)
    kinds = {d["kind"] for d in docs}
    expected = {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "StatefulSet",
        "Job",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "ServiceMonitor",
        "PrometheusRule",
    }
    assert expected <= kinds, expected - kinds
    isvc = by_kind(docs, "InferenceService")
    if profile == "cpu":  # triton.mode=deployment: no KServe objects at all
        assert not isvc and not by_kind(docs, "ServingRuntime")
        find(docs, "Deployment", "vidrec-triton")
    else:
        assert len(isvc) == 1 and len(by_kind(docs, "ServingRuntime")) == 1
        assert "vidrec-triton" not in {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}


@pytest.mark.parametrize("version", ["1.30.0", "1.35.0"])
@pytest.mark.parametrize("profile", list(PROFILES))
def test_builtin_kinds_pass_kubernetes_validate_strict(
    profile: str, version: str, tmp_path: Path
) -> None:
    builtin = [d for d in rendered(profile) if group_of(d) in BUILTIN_GROUPS]
    assert len(builtin) > 20
    path = tmp_path / f"{profile}.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    cmd = [str(KUBERNETES_VALIDATE), "--strict", "-k", version, "--quiet", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_catches_a_bad_manifest(tmp_path: Path) -> None:
    """The validator really checks: a typo'd field fails --strict."""
    deployment = find(rendered("cpu"), "Deployment", "vidrec-recommender")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicie"] = "Always"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    cmd = [str(KUBERNETES_VALIDATE), "--strict", "-k", "1.35.0", "--quiet", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "imagePullPolicie" in result.stdout + result.stderr


def _gpu_requests(docs: Any) -> dict[str, tuple[str, str]]:
    found = {}
    for doc in docs:
        for where, c, _pod, _init in containers(doc):
            res = c.get("resources", {})
            if GPU in res.get("requests", {}) or GPU in res.get("limits", {}):
                found[where] = (res.get("requests", {}).get(GPU), res.get("limits", {}).get(GPU))
        if doc["kind"] == "InferenceService":
            res = doc["spec"]["predictor"]["model"].get("resources", {})
            if GPU in res.get("requests", {}) or GPU in res.get("limits", {}):
                found[f"InferenceService/{doc['metadata']['name']}/model"] = (
                    res.get("requests", {}).get(GPU),
                    res.get("limits", {}).get(GPU),
                )
    return found


@pytest.mark.parametrize("profile", ["default", "cpu"])
def test_no_gpu_outside_the_gpu_profile(profile: str) -> None:
    assert _gpu_requests(rendered(profile)) == {}


def test_only_triton_requests_gpus_in_the_gpu_profile() -> None:
    found = _gpu_requests(rendered("gpu"))
    assert set(found) == {
        "ServingRuntime/vidrec-triton/kserve-container",
        "InferenceService/vidrec-triton/init:trt-build",
        "InferenceService/vidrec-triton/model",
    }
    assert all(v == (1, 1) for v in found.values()), found  # requests == limits for GPUs


def test_gpu_profile_schedules_triton_on_gpu_nodes() -> None:
    predictor = find(rendered("gpu"), "InferenceService", "vidrec-triton")["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in predictor["tolerations"]
    for where, pod in pod_specs(find(rendered("gpu"), "Deployment", "vidrec-recommender")):
        assert "tolerations" not in pod and "nodeSelector" not in pod, where


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_container_is_hardened_and_bounded(profile: str) -> None:
    problems = []
    n = 0
    for doc in rendered(profile):
        for where, c, pod, init in containers(doc):
            n += 1
            sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
            image = c.get("image", "")
            limits = c.get("resources", {}).get("limits", {})
            requests = c.get("resources", {}).get("requests", {})
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(f"{where}: may run as root")
            if psc.get("runAsUser") == 0 or sc.get("runAsUser") == 0:
                problems.append(f"{where}: runAsUser 0")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if not {"cpu", "memory"} <= set(limits) or not {"cpu", "memory"} <= set(requests):
                problems.append(f"{where}: cpu/memory requests and limits missing")
            if image.endswith(":latest") or not re.search(
                r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", image
            ):
                problems.append(f"{where}: image {image!r} is unpinned or :latest")
            if (
                not init
                and where.startswith(LONG_RUNNING)
                and not ("livenessProbe" in c and "readinessProbe" in c)
            ):
                problems.append(f"{where}: liveness/readiness probe missing")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if "/tmp" not in mounts and "/data" not in mounts and doc["kind"] != "Job":
                problems.append(f"{where}: no writable /tmp")
    assert n >= 10
    assert problems == []


def test_hardening_check_catches_a_bad_container() -> None:
    """The hardening assertions fail on what they should (a :latest image, no limits)."""
    docs = [d for d in rendered("cpu") if d["kind"] != "Deployment"]
    bad = find(rendered("cpu"), "Deployment", "vidrec-grpc")
    c = bad["spec"]["template"]["spec"]["containers"][0]
    c["image"], c["resources"] = "ghcr.io/vidrec/vidrec-recommender:latest", {}
    found = [
        w
        for d in [*docs, bad]
        for w, c2, _, _ in containers(d)
        if c2.get("image", "").endswith(":latest") or not c2.get("resources")
    ]
    assert found == ["Deployment/vidrec-grpc/grpc"]


def _config_env_names() -> set[str]:
    cfg = Config()
    return {
        f"VIDREC_{s.name.upper()}__{f.name.upper()}"
        for s in dataclasses.fields(cfg)
        for f in dataclasses.fields(getattr(cfg, s.name))
    }


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_vidrec_variable_is_a_real_setting(profile: str) -> None:
    docs = rendered(profile)
    names = set(find(docs, "ConfigMap", "vidrec-env")["data"])
    for doc in docs:
        for _where, c, _pod, _init in containers(doc):
            names |= {e["name"] for e in c.get("env", [])}
    vidrec = {n for n in names if n.startswith("VIDREC_")}
    assert vidrec - _config_env_names() == set()
    assert {"VIDREC_REDIS__URL", "VIDREC_TRITON__MODEL_NAME", "VIDREC_SERVING__API_KEYS"} <= vidrec


def test_secrets_come_from_secret_refs_and_auth_is_on_by_default() -> None:
    docs = rendered("default")
    c = find(docs, "Deployment", "vidrec-recommender")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    for name in (
        "VIDREC_SERVING__API_KEYS",
        "VIDREC_SERVING__JWT_SECRET",
        "VIDREC_REDIS__PASSWORD",
        "VIDREC_EVENTS__ID_SALT",
        "VIDREC_EVENTS__LAKE_KEY",
    ):
        assert "secretKeyRef" in env[name]["valueFrom"], name
        assert "value" not in env[name]
    cm = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert cm["VIDREC_REDIS__TLS"] == "false"
    assert float(cm["VIDREC_SERVING__RATE_LIMIT_PER_S"]) > 0  # per-client limits on by default
    assert not any(k in cm for k in ("VIDREC_SERVING__API_KEYS", "VIDREC_REDIS__PASSWORD"))
    secret = find(docs, "Secret", "vidrec-secrets")
    assert set(secret["data"]) == {
        "api-keys",
        "jwt-secret",
        "id-salt",
        "lake-key",
        "redis-password",
    }
    assert all(secret["data"].values())
    from vidrec.security.lake_crypto import parse_key  # the generated key is one vidrec reads

    lake_key = base64.b64decode(secret["data"]["lake-key"]).decode()
    assert len(parse_key(lake_key)) == 32
    off = render_with("auth.enabled=false", "redis.tls=true")
    c = find(off, "Deployment", "vidrec-recommender")["spec"]["template"]["spec"]["containers"][0]
    assert "VIDREC_SERVING__API_KEYS" not in {e["name"] for e in c["env"]}
    assert find(off, "ConfigMap", "vidrec-env")["data"]["VIDREC_REDIS__TLS"] == "true"


def _process_env(docs: Any, deployment: str) -> dict[str, str]:
    """What a vidrec container's environment resolves to: its ConfigMap, then its env entries
    (Secret references decoded from the rendered Secret)."""
    c = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env |= find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            data = find(docs, "Secret", ref["name"])["data"]
            env[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


def test_default_install_serves_with_auth_on_and_fails_closed() -> None:
    """Both API processes get generated credentials; a user's JWT acts only for its own sub,
    an API key for anyone; with the credentials missing the process refuses to start."""
    import time

    import jwt

    from vidrec.config import load_config
    from vidrec.security.guard import Guard

    for deployment in ("vidrec-recommender", "vidrec-grpc"):
        env = _process_env(rendered("default"), deployment)
        serving = load_config(env).serving
        assert serving.require_auth and serving.api_keys and serving.jwt_secret, deployment
        auth = Guard.from_config(serving).auth
        key = auth.authenticate(f"Bearer {serving.api_keys[0]}")
        assert key.may_act_for(1) and key.may_act_for(2)
        user = jwt.encode({"sub": "1", "exp": int(time.time()) + 60}, serving.jwt_secret)
        principal = auth.authenticate(f"Bearer {user}")
        assert principal.may_act_for(1) and not principal.may_act_for(2)
        with pytest.raises(ValueError, match="VIDREC_SERVING__API_KEYS"):
            Guard.from_config(dataclasses.replace(serving, api_keys=(), jwt_secret=""))
    given = render_with("secrets.apiKeys=svc-a\\,svc-b", "secrets.jwtSecret=s3cret")
    serving = load_config(_process_env(given, "vidrec-recommender")).serving
    assert (serving.api_keys, serving.jwt_secret) == (("svc-a", "svc-b"), "s3cret")
    own = render_with("secrets.existingSecret=vidrec-auth")
    assert not by_kind(own, "Secret")  # the operator's Secret, not one of the chart's
    c = find(own, "Deployment", "vidrec-grpc")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert refs["VIDREC_SERVING__API_KEYS"] == {"name": "vidrec-auth", "key": "api-keys"}
    assert refs["VIDREC_SERVING__JWT_SECRET"] == {"name": "vidrec-auth", "key": "jwt-secret"}
    off = find(render_with("auth.enabled=false"), "ConfigMap", "vidrec-env")["data"]
    assert off["VIDREC_SERVING__REQUIRE_AUTH"] == "false"


def test_config_values_become_environment() -> None:
    docs = render_with("config.serving.deadline_total_ms=80", "config.events.read_count=500")
    data = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert data["VIDREC_SERVING__DEADLINE_TOTAL_MS"] == "80"
    assert data["VIDREC_EVENTS__READ_COUNT"] == "500"


def test_processes_run_the_local_stack_commands() -> None:
    docs = rendered("cpu")
    pod = find(docs, "Deployment", "vidrec-recommender")["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "-m", services.LEAN_HTTP_MODULE]
    bento = find(render_with("recommender.host=bentoml"), "Deployment", "vidrec-recommender")
    cmd = bento["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[:4] == ["python", "-m", "bentoml", "serve"]
    assert cmd[4] == f"{services.BENTO_SERVICE_FILE}:Recommender"
    assert (Path(CHART).parents[1] / services.BENTO_SERVICE_FILE).is_file()
    grpc = find(docs, "Deployment", "vidrec-grpc")["spec"]["template"]["spec"]["containers"][0]
    assert grpc["command"] == ["python", "-m", services.GRPC_MODULE]
    for name, sub in (("processor", "process"), ("lake", "lake")):
        dep = find(docs, "Deployment", f"vidrec-events-{name}")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == ["python", "-m", "vidrec.events"] and c["args"][0] == sub
    triton = find(docs, "Deployment", "vidrec-triton")["spec"]["template"]["spec"]["containers"][0]
    assert "--model-control-mode=explicit" in triton["args"]
    assert "--load-model=ranker" in triton["args"]
    prepare = find(docs, "Job", "vidrec-prepare")["spec"]["template"]["spec"]["containers"][0]
    assert [*prepare["command"], *prepare["args"][:2]] == ["vidrec", "serve", "prepare"]


def test_the_lean_http_host_runs_the_local_stack_command_and_its_health_route() -> None:
    docs = render_with("recommender.host=uvicorn")
    pod = find(docs, "Deployment", "vidrec-recommender")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["python", "-m", services.LEAN_HTTP_MODULE]
    assert importlib.util.find_spec(services.LEAN_HTTP_MODULE) is not None
    probes = [c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert probes == ["/api/v1/health"] * 3
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert env["VIDREC_SERVING__HTTP_HOST"] == "uvicorn"
    monitors = [m for m in by_kind(render_with("recommender.host=uvicorn",
                "monitoring.serviceMonitor.force=true"), "ServiceMonitor")
                if m["metadata"]["name"].endswith("-recommender")]  # fmt: skip
    paths = [e["path"] for m in monitors for e in m["spec"]["endpoints"]]
    assert paths == ["/api/v1/metrics"]  # BentoML's /metrics does not exist on this host


def test_tensorrt_plan_is_built_in_the_triton_pod_of_the_gpu_profile() -> None:
    docs = rendered("gpu")
    predictor = find(docs, "InferenceService", "vidrec-triton")["spec"]["predictor"]
    init = {c["name"]: c for c in predictor["initContainers"]}
    assert list(init) == ["model-init", "trt-build"]  # fetch the ONNX first, then build
    trt = init["trt-build"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())["triton"]
    assert trt["image"] == f"nvcr.io/nvidia/tensorrt:{values['ngcRelease']}-py3"
    env = {e["name"]: e["value"] for e in trt["env"]}
    assert (env["TRT_MIN_BATCH"], env["TRT_OPT_BATCH"], env["TRT_MAX_BATCH"]) == (
        "1",
        "512",
        "1024",
    )
    assert env["TRT_FP16"] == "1"
    assert "TRT_INPUT_DIM" not in env  # the width is read from each ONNX graph
    assert trt["command"] == ["bash", "/scripts/build_plan.sh"]
    assert (env["MODEL_REPOSITORY"], env["PLAN_CACHE"]) == ("/models", "/plan-cache")
    script = find(docs, "ConfigMap", "vidrec-trt-build")["data"]["build_plan.sh"]
    assert script == (CHART / "files" / "build_plan.sh").read_text()
    runtime = find(docs, "ServingRuntime", "vidrec-triton")["spec"]["containers"][0]
    assert "--load-model=ranker_trt" in runtime["args"]
    assert (
        find(docs, "ConfigMap", "vidrec-env")["data"]["VIDREC_TRITON__MODEL_NAME"] == "ranker_trt"
    )
    model_init = init["model-init"]["args"]
    assert model_init[model_init.index("--models") + 1] == "ranker,ranker_trt"
    fp32 = render_with("triton.tensorrt.fp16=false", "triton.tensorrt.optBatch=256", profile="gpu")
    p = find(fp32, "InferenceService", "vidrec-triton")["spec"]["predictor"]
    env = {e["name"]: e["value"] for e in p["initContainers"][1]["env"]}
    assert (env["TRT_FP16"], env["TRT_OPT_BATCH"]) == ("0", "256")
    cpu = rendered("cpu")
    pod = find(cpu, "Deployment", "vidrec-triton")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["model-init"]


def served_ranker_config(docs: Any, repo: Path) -> mc.ModelConfig:
    """The config Triton loads with the rendered args over a repository written by vidrec:
    ``<model>/configs/<--model-config-name>.pbtxt`` when present, else ``config.pbtxt``."""
    (triton,) = [
        c
        for doc in docs
        for where, c, _, init in containers(doc)
        if not init and c.get("command") == ["tritonserver"]
    ]
    flags = dict(a.removeprefix("--").split("=", 1) for a in triton["args"] if "=" in a)
    model = repo / flags["load-model"]
    custom = model / "configs" / f"{flags.get('model-config-name', '')}.pbtxt"
    return parse_config(custom if "model-config-name" in flags and custom.is_file() else
                        model / "config.pbtxt")  # fmt: skip


@pytest.mark.parametrize(
    ("profile", "sets", "platform", "backend"),
    [
        ("cpu", (), "onnxruntime_onnx", "onnxruntime"),
        ("default", (), "onnxruntime_onnx", "onnxruntime"),
        ("gpu", (), "tensorrt_plan", ""),
        ("cpu", ("triton.backend=python",), "", "python"),
    ],
)
def test_triton_serves_the_ranker_on_the_profile_backend(
    profile: str, sets: tuple[str, ...], platform: str, backend: str, tmp_path: Path
) -> None:
    """CPU: Triton's native ONNX Runtime backend; GPU: the TensorRT plan; python on request
    (the local stack's backend). Same model I/O whichever serves."""
    repo = write_model_repository(tmp_path, None, RankingConfig(), input_dim=203)
    docs = render_with(*sets, profile=profile) if sets else rendered(profile)
    config = served_ranker_config(docs, repo)
    assert (config.platform, config.backend) == (platform, backend)
    assert [i.name for i in config.input] == ["features"]
    assert [o.name for o in config.output] == ["scores"]
    assert config.HasField("dynamic_batching")


def triton_args(docs: Any) -> list[str]:
    (triton,) = [
        c
        for doc in docs
        for _where, c, _, init in containers(doc)
        if not init and c.get("command") == ["tritonserver"]
    ]
    return list(triton["args"])


HEADLESS_TARGET = "dns:///vidrec-triton-headless.vidrec.svc.cluster.local:8001"


@pytest.mark.parametrize("profile", list(PROFILES))
def test_recommenders_balance_grpc_over_triton_pods_through_a_headless_service(
    profile: str,
) -> None:
    """A ClusterIP is balanced per connection: the serving pods' one channel each would stay
    on one Triton pod. They dial the headless Service, whose DNS answer is every ready pod."""
    docs = rendered(profile)
    headless = find(docs, "Service", "vidrec-triton-headless")["spec"]
    cluster_ip = find(docs, "Service", "vidrec-triton")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is False
    assert "clusterIP" not in cluster_ip  # the operator and HTTP keep the ClusterIP one
    assert headless["selector"] == cluster_ip["selector"]
    # gRPC only: no metrics port, so the triton ServiceMonitor does not scrape pods twice
    assert headless["ports"] == [p for p in cluster_ip["ports"] if p["name"] == "grpc"]
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert env["VIDREC_TRITON__GRPC_TARGET"] == HEADLESS_TARGET
    triton = load_config(env).triton
    assert triton.ranker_target == HEADLESS_TARGET and triton.grpc_lb_policy == "round_robin"
    for name in ("vidrec-recommender", "vidrec-grpc"):
        pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        refs = [e.get("configMapRef", {}).get("name") for e in pod["containers"][0]["envFrom"]]
        assert "vidrec-env" in refs, name
    # Triton closes connections at their age, so clients re-resolve and find new pods.
    assert {"--grpc-max-connection-age=60000", "--grpc-max-connection-age-grace=10000"} <= set(
        triton_args(docs)
    )


def test_triton_grpc_target_follows_the_port_and_can_be_overridden() -> None:
    docs = render_with("triton.grpcPort=9001", "triton.grpcMaxConnectionAgeMs=0", profile="cpu")
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert env["VIDREC_TRITON__GRPC_TARGET"] == HEADLESS_TARGET.replace(":8001", ":9001")
    assert find(docs, "Service", "vidrec-triton-headless")["spec"]["ports"][0]["port"] == 9001
    assert not [a for a in triton_args(docs) if a.startswith("--grpc-max-connection-age")]
    back = render_with("config.triton.grpc_target=vidrec-triton:8001")  # the ClusterIP again
    assert find(back, "ConfigMap", "vidrec-env")["data"]["VIDREC_TRITON__GRPC_TARGET"] == (
        "vidrec-triton:8001"
    )


def test_the_ranker_path_decides_who_splits_and_what_serving_asks_for() -> None:
    """gateway-table routers: serving splits over the Triton pods. kserve / gateway-api: the
    recommender calls what splits upstream and asks Triton for no version."""
    env = find(rendered("default"), "ConfigMap", "vidrec-env")["data"]
    assert env["VIDREC_SERVING__RANKER_SPLIT"] == "serving"
    assert env["VIDREC_TRITON__GRPC_TARGET"] == HEADLESS_TARGET
    ingress = "dns:///ranker.models.example.com:80"  # the InferenceService on the ingress
    docs = render_with("routing.rankerPath=kserve", f"routing.upstreamTarget={ingress}")
    kserve = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert kserve["VIDREC_SERVING__RANKER_SPLIT"] == "upstream"
    assert kserve["VIDREC_TRITON__GRPC_TARGET"] == ingress
    assert load_config(kserve).serving.ranker_split == "upstream"
    gateway = "dns:///ranker-gw.gateways.svc.cluster.local:80"
    docs = render_with("routing.rankerPath=gateway", f"routing.upstreamTarget={gateway}")
    env = find(docs, "ConfigMap", "vidrec-env")["data"]
    assert env["VIDREC_TRITON__GRPC_TARGET"] == gateway
    assert env["VIDREC_SERVING__RANKER_SPLIT"] == "upstream"
    for path in ("gateway", "kserve"):  # never a silent fallback to the pods themselves
        with pytest.raises(subprocess.CalledProcessError) as bad:
            render_with(f"routing.rankerPath={path}")
        assert "routing.upstreamTarget" in bad.value.stderr
    with pytest.raises(subprocess.CalledProcessError) as bad:
        render_with(
            "routing.rankerPath=kserve",
            f"routing.upstreamTarget={ingress}",
            "triton.mode=deployment",
        )
    assert "triton.mode=kserve" in bad.value.stderr
    with pytest.raises(subprocess.CalledProcessError) as bad:
        render_with("routing.rankerPath=sideways")
    assert "rankerPath" in bad.value.stderr


def test_services_select_pods_that_exist() -> None:
    for profile in PROFILES:
        docs = rendered(profile)
        pod_labels = []
        for doc in docs:
            if doc["kind"] in {"Deployment", "StatefulSet"}:
                pod_labels.append(doc["spec"]["template"]["metadata"]["labels"])
            if doc["kind"] == "InferenceService":
                pod_labels.append(doc["spec"]["predictor"]["labels"])
        for svc in by_kind(docs, "Service"):
            sel = svc["spec"]["selector"]
            assert any(sel.items() <= labels.items() for labels in pod_labels), svc["metadata"]


def test_operator_rbac_is_least_privilege() -> None:
    docs = rendered("gpu")
    role = find(docs, "Role", "vidrec-operator")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r for r in role["rules"]}
    for r in role["rules"]:
        assert "*" not in r["verbs"] and "*" not in r["resources"] and "*" not in r["apiGroups"]
        assert not {"delete", "deletecollection", "update"} & set(r["verbs"]), r
        assert "secrets" not in r["resources"]
    assert set(rules[(("vidrec.io",), ("modelrollouts",))]["verbs"]) == {
        "get",
        "list",
        "watch",
        "patch",
    }
    assert set(rules[(("vidrec.io",), ("modelrollouts/status",))]["verbs"]) == {"get", "patch"}
    isvc = rules[(("serving.kserve.io",), ("inferenceservices",))]
    assert isvc["resourceNames"] == ["ranker", "vidrec-triton"]
    cm = [r for r in role["rules"] if r["resources"] == ["configmaps"] and "patch" in r["verbs"]]
    assert cm[0]["resourceNames"] == ["ranker"]
    cluster = find(docs, "ClusterRole", "vidrec-vidrec-operator-crds")
    assert cluster["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        }
    ]
    op = find(docs, "Deployment", "vidrec-operator")["spec"]["template"]["spec"]
    assert op["serviceAccountName"] == "vidrec-operator"
    assert "--namespace=vidrec" in op["containers"][0]["args"]
    pods = [p for d in docs if d["kind"] != "ServingRuntime" for _w, p in pod_specs(d)]
    assert [p.get("automountServiceAccountToken") for p in pods if p is not op] == [False] * (
        len(pods) - 1
    )  # only the operator holds an API token
    wide = render_with("operator.scope=cluster")
    assert find(wide, "ClusterRole", "vidrec-vidrec-operator")
    assert not by_kind(wide, "Role")


def test_network_policies_default_deny_and_open_only_service_ports() -> None:
    docs = rendered("default")
    pols = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    deny = pols["vidrec-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    triton = pols["vidrec-triton"]["spec"]["ingress"][0]
    allowed = triton["from"][0]["podSelector"]["matchExpressions"][1]["values"]
    assert allowed == ["recommender", "grpc", "operator"]


def test_bundled_or_external_redis() -> None:
    docs = rendered("default")
    sts = find(docs, "StatefulSet", "vidrec-redis")
    assert sts["spec"]["replicas"] == 6  # 3 masters, 1 replica each (test_redis_replicas.py)
    assert "--cluster-enabled yes" in sts["spec"]["template"]["spec"]["containers"][0]["args"][0]
    find(docs, "Job", "vidrec-redis-cluster-init")
    ext = render_with("redis.mode=external", "redis.external.url=redis://cache.example:6379/0")
    assert not by_kind(ext, "StatefulSet")
    assert find(ext, "ConfigMap", "vidrec-env")["data"]["VIDREC_REDIS__URL"] == (
        "redis://cache.example:6379/0"
    )


@pytest.mark.parametrize(
    ("sets", "field"),
    [
        (["recommender.replicas=-1"], "/recommender/replicas"),
        (["triton.mode=knative"], "/triton/mode"),
        (["triton.backend=tensorrt"], "/triton/gpu/enabled"),
        (["image.tag=latest"], "/image/tag"),
        (["redis.mode=external"], "/redis/external/url"),
        (["redis.bundled.masters=2"], "/redis/bundled/masters"),
        (["config.servng.clock=wall"], "servng"),
        (["modelStore.type=uri"], "/modelStore/uri"),
        (["recommender.resources.limits.cpu=lots"], "/recommender/resources/limits/cpu"),
        (["recommender.replica=2"], "replica"),
    ],
)
def test_schema_rejects_invalid_values(sets: list[str], field: str) -> None:
    args = ["template", "vidrec", str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr, result.stderr


def test_lint_rejects_invalid_values_too() -> None:
    result = helm("lint", str(CHART), "--set", "events.processor.replicas=-3", check=False)
    assert result.returncode != 0 and "/events/processor/replicas" in result.stdout + result.stderr


def test_routing_configmap_is_mounted_where_serving_reads_it() -> None:
    """The gateway-table-configmap router's ConfigMap reaches the API pods as the file that
    ``ServingConfig.routing_file`` names; by default serving reads the Redis key."""
    from vidrec.rollout.routers.gateway_table import CONFIGMAP_KEY

    default = find(rendered("default"), "ConfigMap", "vidrec-env")["data"]
    assert default.get("VIDREC_SERVING__ROUTING_FILE", "") == ""
    docs = render_with("routing.configMap=ranker")
    path = find(docs, "ConfigMap", "vidrec-env")["data"]["VIDREC_SERVING__ROUTING_FILE"]
    assert Path(path).name == CONFIGMAP_KEY
    for name in ("vidrec-recommender", "vidrec-grpc"):
        pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "routing")
        assert volume["configMap"] == {"name": "ranker", "optional": True}
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "routing")
        assert mount["mountPath"] == str(Path(path).parent) and mount["readOnly"]
    with pytest.raises(subprocess.CalledProcessError) as bad:
        render_with("routing.configMap=Not_A_Name")
    assert "routing.configMap" in bad.value.stderr or "configMap" in bad.value.stderr


def test_operator_notifier_url_comes_from_a_secret() -> None:
    docs = render_with("operator.notifier.type=slack", "operator.notifier.urlSecret.name=hooks")
    pod = find(docs, "Deployment", "vidrec-operator")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["VIDREC_ROLLOUT__NOTIFIER"]["value"] == "slack"
    ref = env["VIDREC_ROLLOUT__NOTIFIER_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hooks", "key": "url"}
    default = find(rendered("default"), "Deployment", "vidrec-operator")["spec"]["template"]
    assert "VIDREC_ROLLOUT__NOTIFIER" not in {
        e["name"] for e in default["spec"]["containers"][0]["env"]
    }
    with pytest.raises(subprocess.CalledProcessError) as bad:  # a notifier without its URL
        render_with("operator.notifier.type=slack")
    assert "urlSecret" in bad.value.stderr


def test_external_redis_without_auth_gets_no_password() -> None:
    docs = render_with(
        "redis.mode=external", "redis.external.url=redis://r:6379/0", "redis.password.enabled=false"
    )
    pod = find(docs, "Deployment", "vidrec-recommender")["spec"]["template"]["spec"]
    assert "VIDREC_REDIS__PASSWORD" not in {e["name"] for e in pod["containers"][0]["env"]}
    assert "redis-password" not in find(docs, "Secret", "vidrec-secrets")["data"]
    with pytest.raises(subprocess.CalledProcessError) as bad:  # the bundled one keeps AUTH
        render_with("redis.password.enabled=false")
    assert "mode" in bad.value.stderr
