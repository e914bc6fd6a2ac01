"""skaffold.yaml and the Dockerfiles: every path named exists, images are the chart's, bases
are pinned, runtime users are non-root, and entrypoints are the commands the stack runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import CHART, REPO

SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text())
DOCKERFILES = sorted((REPO / "images").glob("*/Dockerfile"))


def _artifacts() -> list[dict[str, Any]]:
    return list(SKAFFOLD["build"]["artifacts"])


def test_skaffold_parses_and_names_existing_paths() -> None:
    assert SKAFFOLD["apiVersion"].startswith("skaffold/v4")
    for art in _artifacts():
        context = REPO / art.get("context", ".")
        assert context.is_dir(), art
        assert (context / art["docker"]["dockerfile"]).is_file(), art
    releases = SKAFFOLD["deploy"]["helm"]["releases"]
    for rel in releases:
        assert (REPO / rel["chartPath"] / "Chart.yaml").is_file()
        for values in rel.get("valuesFiles", []):
            assert (REPO / values).is_file(), values
    profiles = {p["name"]: p for p in SKAFFOLD["profiles"]}
    assert set(profiles) == {"cpu", "gpu"}
    for name, profile in profiles.items():
        for patch in profile["patches"]:
            assert patch["path"].startswith("/deploy/helm/releases/0/")
            assert [(REPO / v).is_file() for v in patch["value"]] == [True]
            assert patch["value"] == [f"charts/vidrec/values-{name}.yaml"]


def _targets(dockerfile: Path) -> set[str]:
    return set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile.read_text(), re.M))


def test_skaffold_builds_every_dockerfile_and_sets_every_chart_image() -> None:
    built = {REPO / a["docker"]["dockerfile"] for a in _artifacts()}
    assert built == set(DOCKERFILES)
    for art in _artifacts():  # a target names a stage of its Dockerfile
        if target := art["docker"].get("target"):
            assert target in _targets(REPO / art["docker"]["dockerfile"]), art
    values = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    chart_repos = {k: v["repository"] for k, v in values.items() if isinstance(v, dict)}
    sets = SKAFFOLD["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    for key, repo in chart_repos.items():
        assert f"image.{key}.repository" in sets, key
        assert repo in {a["image"] for a in _artifacts()}, repo
        env_name = repo.replace("-", "_")
        assert sets[f"image.{key}.repository"] == f"{{{{.IMAGE_REPO_NO_DOMAIN_{env_name}}}}}"


def test_skaffold_port_forwards_api_and_prometheus() -> None:
    ports = {(p["resourceName"], p["port"]) for p in SKAFFOLD["portForward"]}
    assert {("vidrec-recommender", 3000), ("vidrec-grpc", 50051)} <= ports
    assert any(port == 9090 for _name, port in ports)


def _stages(dockerfile: Path) -> list[str]:
    """The external base images (a FROM naming an earlier stage is not a base)."""
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], f) for f in froms]
    return [b for b in bases if b not in _targets(dockerfile)]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_are_multistage_pinned_and_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    bases = _stages(dockerfile)
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert bases
    for base in bases:
        assert re.search(r":[0-9][\w.-]*$|@sha256:[0-9a-f]{64}$", base), f"unpinned base {base}"
        assert not base.endswith(":latest")
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), users
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in src.split():
            assert (REPO / path).exists(), f"{dockerfile}: COPY {path} does not exist"


def _exec_form(dockerfile: Path, instruction: str, target: str | None = None) -> list[str]:
    """The exec-form ``instruction`` of the final stage, or of stage ``target``."""
    text = dockerfile.read_text().replace("\\\n", "")
    if target is not None:
        stage = re.search(rf"^FROM \S+ AS {target}$(.*?)(?=^FROM |\Z)", text, re.M | re.S)
        assert stage, f"{dockerfile}: no stage {target}"
        text = stage.group(1)
    found = re.findall(rf"^{instruction} (\[.*\])$", text, re.M)
    return list(yaml.safe_load(found[-1])) if found else []


@pytest.mark.parametrize("target", ["recommender", "operator", "jobs"])
def test_every_python_target_runs_as_non_root(target: str) -> None:
    text = (REPO / "images" / "python" / "Dockerfile").read_text()
    stage = re.search(rf"^FROM \S+ AS {target}$(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert stage and re.search(r"^USER [1-9][0-9]*:[1-9][0-9]*$", stage.group(1), re.M)


def test_image_entrypoints_are_the_stack_commands() -> None:
    from vidrec_dev.stack import services

    images = REPO / "images"
    python = images / "python" / "Dockerfile"
    rec = _exec_form(python, "CMD", "recommender")
    assert rec[:5] == [
        "python",
        "-m",
        "bentoml",
        "serve",
        f"{services.BENTO_SERVICE_FILE}:Recommender",
    ]
    op = _exec_form(python, "ENTRYPOINT", "operator") + _exec_form(python, "CMD", "operator")
    assert op[:2] == ["kopf", "run"] and (REPO / op[-1]).is_file()
    assert _exec_form(python, "ENTRYPOINT", "jobs") == ["vidrec"]
    assert _exec_form(images / "triton" / "Dockerfile", "ENTRYPOINT") == ["tritonserver"]
    init = _exec_form(images / "model-init" / "Dockerfile", "ENTRYPOINT")
    assert init == ["python", "/app/fetch_models.py"]


def test_triton_image_release_matches_the_chart() -> None:
    text = (REPO / "images" / "triton" / "Dockerfile").read_text()
    release = re.search(r"^ARG NGC_RELEASE=(\S+)", text, re.M)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert release and release.group(1) == values["triton"]["ngcRelease"]


def test_model_init_entrypoint_copies_a_model_repository(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for model in ("ranker", "ranker_trt", "other"):
        (store / "model_repository" / model / "1").mkdir(parents=True)
        (store / "model_repository" / model / "config.pbtxt").write_text(f'name: "{model}"\n')
    (store / "model_repository" / "ranker" / "1" / "model.onnx").write_bytes(b"onnx")
    dest = tmp_path / "models"
    script = REPO / "images" / "model-init" / "fetch_models.py"
    cmd = [
        sys.executable,
        str(script),
        "--source",
        str(store),
        "--dest",
        str(dest),
        "--subdir",
        "model_repository",
        "--models",
        "ranker,ranker_trt",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["ranker", "ranker_trt"]
    assert (dest / "ranker" / "1" / "model.onnx").read_bytes() == b"onnx"
    missing = subprocess.run([*cmd[:-1], "ranker,ranker_int4"], capture_output=True, text=True)
    assert missing.returncode != 0 and "ranker_int4" in missing.stderr


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "artifacts", "runs"} <= set(ignored)
    for needed in ("src", "bentos", "proto", "operators", "images", "data", "pyproject.toml"):
        assert needed not in ignored
