"""The GPU profile's TensorRT plans in the rendered chart: one Job per published version,
writing into the model store with the initContainer's profile, and the chart's build script
run from the rendered ConfigMap (with a fake trtexec/nvidia-smi: no GPU here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.chart.render import (
    KUBERNETES_VALIDATE,
    by_kind,
    find,
    helm,
    render_with,
    rendered,
    template_args,
)
from vidrec.config import RankingConfig
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import write_model_repository

REPO = Path(__file__).resolve().parents[2]


def plan_jobs(docs: Any) -> dict[str, dict[str, Any]]:
    return {
        j["metadata"]["labels"]["vidrec.io/ranker-version"]: j
        for j in by_kind(docs, "Job")
        if j["metadata"]["labels"].get("app.kubernetes.io/component") == "trt-plan"
    }


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_one_plan_job_per_published_version_with_the_pod_profile() -> None:
    docs = render_with(
        "triton.tensorrt.planJobs.versions={1,4}",
        "modelStore.pvc.subPath=artefacts/2026-11-01",
        profile="gpu",
    )
    jobs = plan_jobs(docs)
    assert sorted(jobs) == ["1", "4"]
    predictor = find(docs, "InferenceService", "vidrec-triton")["spec"]["predictor"]
    init = {c["name"]: c for c in predictor["initContainers"]}["trt-build"]
    profile = ("TRT_MIN_BATCH", "TRT_OPT_BATCH", "TRT_MAX_BATCH", "TRT_FP16", "TRT_INPUT_NAME")
    for version, job in jobs.items():
        pod = job["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        env = env_of(c)
        assert (
            env["TRT_VERSIONS"] == version and env["MODEL_REPOSITORY"] == "/store/model_repository"
        )
        # the same key inputs as the Triton pod: the initContainer skips a Job's plan
        assert {k: env[k] for k in profile} == {k: env_of(init)[k] for k in profile}
        assert c["image"] == init["image"] and c["command"] == init["command"]
        assert c["resources"] == init["resources"]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == predictor["nodeSelector"]
        assert pod["tolerations"] == predictor["tolerations"]
        store = {m["name"]: m for m in c["volumeMounts"]}["store"]
        assert store["subPath"] == "artefacts/2026-11-01" and not store.get("readOnly")
        volumes = {v["name"]: v for v in pod["volumes"]}
        claim = volumes["store"]["persistentVolumeClaim"]
        assert claim == {"claimName": "vidrec-artefacts"}  # writable: the plan goes there
        assert volumes["scripts"]["configMap"]["name"] == "vidrec-trt-build"
        assert pod["restartPolicy"] == "Never"
    # The Triton pod copies ranker_trt (plans + keys) from the store before trt-build runs.
    args = predictor["initContainers"][0]["args"]
    assert args[args.index("--models") + 1] == "ranker,ranker_trt"


def test_a_profile_change_makes_new_jobs() -> None:
    """Job specs are immutable: the name carries a hash of the image, profile and script."""
    before = plan_jobs(render_with("triton.tensorrt.planJobs.versions={2}", profile="gpu"))
    same = plan_jobs(render_with("triton.tensorrt.planJobs.versions={2}", profile="gpu"))
    after = plan_jobs(
        render_with(
            "triton.tensorrt.planJobs.versions={2}", "triton.tensorrt.optBatch=256", profile="gpu"
        )
    )
    name = before["2"]["metadata"]["name"]
    assert name.startswith("vidrec-trt-plan-v2-")
    assert same["2"]["metadata"]["name"] == name != after["2"]["metadata"]["name"]


def test_no_plan_jobs_by_default_or_on_cpu() -> None:
    assert plan_jobs(rendered("gpu")) == {}
    assert plan_jobs(render_with("triton.tensorrt.planJobs.versions={1}", profile="cpu")) == {}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("triton.tensorrt.planJobs.versions={1}", "modelStore.type=uri",
             "modelStore.uri=s3://b/a"),
            "planJobs.versions needs modelStore.type=pvc",
        ),
        (("triton.tensorrt.planJobs.versions={0}",), "/triton/tensorrt/planJobs/versions/0"),
        (("triton.tensorrt.inputDim=203",), "inputDim"),  # gone: read from the ONNX
    ],
)  # fmt: skip
def test_bad_plan_settings_are_refused(sets: tuple[str, ...], message: str) -> None:
    args = template_args("gpu", *(a for s in sets for a in ("--set", s)))
    result = helm(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_rendered_script_builds_a_plan_per_version(tmp_path: Path) -> None:
    """The ConfigMap's script, with the rendered Job's env, over a repository written by
    vidrec: it builds the Job's version only, at the width of the exported ONNX."""
    docs = render_with("triton.tensorrt.planJobs.versions={2}", profile="gpu")
    script = tmp_path / "build_plan.sh"
    script.write_text(find(docs, "ConfigMap", "vidrec-trt-build")["data"]["build_plan.sh"])
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(17, 3), torch.nn.Sigmoid())
    onnx = export_ranker_onnx(module, 17, tmp_path / "ranker.onnx")
    repo = write_model_repository(tmp_path / "store", onnx, RankingConfig(), versions=[1, 2])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA L4, 8.9'\n")
    (bin_dir / "trtexec").write_text(
        '#!/bin/sh\n[ "$1" = --help ] && { echo "[TensorRT v100800] [b43]"; exit 0; }\n'
        'printf "%s\\n" "$@" > "$LOG"\n'
        'for a; do case "$a" in --saveEngine=*) echo plan > "${a#--saveEngine=}";; esac; done\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (job,) = plan_jobs(docs).values()
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    env |= {"MODEL_REPOSITORY": str(repo), "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}
    run_env = {
        **os.environ,
        **env,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(tmp_path / "args"),
        "TRT_PYTHON": str(REPO / ".venv" / "bin" / "python"),
    }
    result = subprocess.run(
        ["bash", str(script)], env=run_env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert not (repo / "ranker_trt" / "1").exists()
    assert (repo / "ranker_trt" / "2" / "model.plan").read_text() == "plan\n"
    assert "gpu=NVIDIA L4, 8.9" in (repo / "ranker_trt" / "2" / "model.plan.key").read_text()
    args = (tmp_path / "args").read_text().splitlines()
    assert "--maxShapes=features:1024x17" in args and "--fp16" in args


def test_plan_jobs_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    docs = render_with(
        "triton.tensorrt.planJobs.versions={1,2}",
        "triton.tensorrt.cache.existingClaim=plans",
        profile="gpu",
    )
    jobs = list(plan_jobs(docs).values())
    volumes = {v["name"] for v in jobs[0]["spec"]["template"]["spec"]["volumes"]}
    assert "plan-cache" in volumes  # a shared cache claim is mounted in the Jobs too
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(jobs))
    cmd = [str(KUBERNETES_VALIDATE), "--strict", "-k", "1.35.0", "--quiet", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
