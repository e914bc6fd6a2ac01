"""Triton model repository: configs Triton can parse, I/O matching the ONNX graph, the
TensorRT build script (run here with a fake trtexec and nvidia-smi: its lookup, cache key,
width read from the ONNX), and no drift between the committed repository and the writer."""

from __future__ import annotations

import dataclasses
import filecmp
import hashlib
import os
import subprocess
from pathlib import Path

import onnx as onnx_lib
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from vidrec.config import RankingConfig, ServingConfig
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import (
    build_plan_script,
    main,
    ort_config_path,
    write_model_repository,
)
from vidrec.schema import RANKER_HEADS

torch.set_num_threads(1)
D = 20
REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / "model_repository"
TEMPLATE = REPO_ROOT / "src" / "vidrec" / "ranking" / "templates" / "ranker_model.py"
WEIGHTS = {".onnx", ".plan"}  # generated, git-ignored


def parse(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


@pytest.fixture(scope="module")
def onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    module = torch.nn.Sequential(torch.nn.Linear(D, 3), torch.nn.Sigmoid())
    return export_ranker_onnx(module, D, tmp_path_factory.mktemp("m") / "ranker.onnx")


def test_ranker_config(tmp_path: Path, onnx: Path) -> None:
    cfg = RankingConfig()
    repo = write_model_repository(tmp_path, onnx, cfg)
    config = parse(repo / "ranker" / "config.pbtxt")
    assert config.name == "ranker" and config.backend == "python"
    assert config.max_batch_size >= 1024 and config.max_batch_size == cfg.max_batch_size
    assert list(config.dynamic_batching.preferred_batch_size) == list(cfg.preferred_batch_sizes)
    assert config.dynamic_batching.max_queue_delay_microseconds == cfg.max_queue_delay_us
    (group,) = config.instance_group
    assert (group.kind, group.count) == (mc.ModelInstanceGroup.KIND_CPU, cfg.cpu_instances)
    assert config.version_policy.HasField("all")
    (inp,), (out,) = config.input, config.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("features", mc.TYPE_FP32, [D])
    assert (out.name, out.data_type, list(out.dims)) == ("scores", mc.TYPE_FP32, [3])
    assert config.parameters["heads"].string_value.split(",") == list(RANKER_HEADS)
    version = repo / "ranker" / "1"
    assert (version / "model.onnx").read_bytes() == onnx.read_bytes()
    assert filecmp.cmp(version / "model.py", TEMPLATE, shallow=False)


def test_trt_config_mirrors_the_cpu_model(tmp_path: Path, onnx: Path) -> None:
    cfg = dataclasses.replace(RankingConfig(), max_batch_size=2048, max_queue_delay_us=500)
    repo = write_model_repository(tmp_path, onnx, cfg, versions=[1, 2], version_policy="specific")
    cpu, gpu = parse(repo / "ranker" / "config.pbtxt"), parse(repo / "ranker_trt" / "config.pbtxt")
    assert gpu.platform == "tensorrt_plan" and gpu.name == "ranker_trt"
    assert gpu.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert gpu.max_batch_size == cpu.max_batch_size == 2048
    assert gpu.dynamic_batching == cpu.dynamic_batching
    assert gpu.input == cpu.input and gpu.output == cpu.output
    assert list(cpu.version_policy.specific.versions) == [1, 2]
    assert (repo / "ranker" / "2" / "model.onnx").is_file()


def test_ort_backend_config_serves_the_same_model(tmp_path: Path, onnx: Path) -> None:
    """configs/onnxruntime.pbtxt (chart CPU profile) is the python-backend model's twin on
    Triton's native backend: same name, I/O, batching, versions and weights file."""
    cfg = dataclasses.replace(RankingConfig(), cpu_instances=3, max_queue_delay_us=700)
    repo = write_model_repository(tmp_path, onnx, cfg, versions=[1, 2], ort_threads=2)
    python, ort = parse(repo / "ranker" / "config.pbtxt"), parse(repo / ort_config_path())
    assert (ort.platform, ort.backend) == ("onnxruntime_onnx", "onnxruntime")
    assert python.backend == "python" and not python.platform
    assert ort.name == python.name == "ranker" and ort.default_model_filename == "model.onnx"
    for field in ("input", "output", "max_batch_size", "dynamic_batching", "instance_group"):
        assert getattr(ort, field) == getattr(python, field), field
    assert ort.version_policy == python.version_policy and ort.model_warmup == python.model_warmup
    assert ort.parameters["intra_op_thread_count"].string_value == "2"
    assert ort.parameters["heads"] == python.parameters["heads"]
    assert {p.name for p in (repo / "ranker" / "2").iterdir()} == {"model.py", "model.onnx"}


def test_cpu_models_warm_up_at_the_candidate_batch(tmp_path: Path, onnx: Path) -> None:
    repo = write_model_repository(tmp_path / "a", onnx, RankingConfig())
    (warmup,) = parse(repo / "ranker" / "config.pbtxt").model_warmup
    assert warmup.batch_size == ServingConfig().rank_top_n
    (tensor,) = warmup.inputs.items()
    assert tensor[0] == "features" and tensor[1].zero_data and list(tensor[1].dims) == [D]
    assert tensor[1].data_type == mc.TYPE_FP32
    small = dataclasses.replace(
        RankingConfig(), max_batch_size=256, preferred_batch_sizes=(256,), trt_opt_batch=256
    )
    repo = write_model_repository(tmp_path / "b", onnx, small, warmup_rows=300)
    assert parse(repo / "ranker" / "config.pbtxt").model_warmup[0].batch_size == 256  # capped
    assert not parse(repo / "ranker_trt" / "config.pbtxt").model_warmup  # GPU: unchanged


FAKE_TRTEXEC = """#!/usr/bin/env bash
# Records its arguments; --help prints trtexec's banner; a build writes --saveEngine.
banner="&&&& RUNNING TensorRT.trtexec [TensorRT ${FAKE_TRT:-v100800}] [b43] # trtexec --help"
if [ "$1" = --help ]; then echo "$banner"; exit 0; fi
printf "%s\\n" "$@" >> "$TRTEXEC_LOG"
echo call >> "$TRTEXEC_LOG.calls"
for a in "$@"; do case "$a" in --saveEngine=*) echo plan > "${a#--saveEngine=}";; esac; done
"""
FAKE_NVIDIA_SMI = '#!/usr/bin/env bash\necho -n "${FAKE_GPU-NVIDIA H100 80GB HBM3, 9.0}"\n'


def fake_bin(tmp_path: Path) -> Path:
    """A directory with a fake trtexec (records its arguments) and a fake nvidia-smi."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("trtexec", FAKE_TRTEXEC), ("nvidia-smi", FAKE_NVIDIA_SMI)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_build_plan(
    repo: Path, tmp_path: Path, path: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run build_plan.sh with the fake trtexec/nvidia-smi first on PATH (not via TRTEXEC, so
    the lookup is exercised), the venv's python (has onnx) reading the width."""
    bin_dir = fake_bin(tmp_path)
    full_env = {
        **os.environ,
        "PATH": path if path is not None else f"{bin_dir}:{os.environ['PATH']}",
        "TRTEXEC_LOG": str(tmp_path / "calls.txt"),
        "TRT_PYTHON": str(REPO_ROOT / ".venv" / "bin" / "python"),
        **env,
    }
    script = repo / "ranker_trt" / "build_plan.sh"
    return subprocess.run(
        ["bash", str(script)], env=full_env, capture_output=True, text=True, check=False
    )


def builds(tmp_path: Path) -> int:
    calls = tmp_path / "calls.txt.calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


@pytest.mark.parametrize("fp16", [True, False])
def test_build_plan_runs_trtexec_per_version(tmp_path: Path, onnx: Path, fp16: bool) -> None:
    cfg = dataclasses.replace(RankingConfig(), trt_fp16=fp16, trt_opt_batch=384)
    repo = write_model_repository(tmp_path / "repo", onnx, cfg, versions=[1, 3])
    result = run_build_plan(repo, tmp_path)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "calls.txt").read_text().splitlines()
    trt = repo.resolve() / "ranker_trt"
    for version in ("1", "3"):
        assert f"--onnx={repo.resolve()}/ranker/{version}/model.onnx" in args
        assert f"--saveEngine={trt}/{version}/model.plan.tmp" in args
        assert (trt / version / "model.plan").read_text() == "plan\n"  # moved into place
    # the width (D=20) was read from the ONNX graph: no setting carries it
    assert args.count(f"--minShapes=features:1x{D}") == 2
    assert args.count(f"--optShapes=features:384x{D}") == 2
    assert args.count(f"--maxShapes=features:1024x{D}") == 2
    assert args.count("--fp16") == (2 if fp16 else 0)


def test_plan_key_skips_a_matching_plan_and_rebuilds_on_each_change(
    tmp_path: Path, onnx: Path
) -> None:
    """model.plan.key = ONNX sha256 + GPU + TensorRT + profile + precision: the same inputs
    skip the build, a change in any one of them rebuilds."""
    repo = write_model_repository(tmp_path / "repo", onnx, RankingConfig())
    assert run_build_plan(repo, tmp_path).returncode == 0
    key_file = repo / "ranker_trt" / "1" / "model.plan.key"
    key = dict(line.split("=", 1) for line in key_file.read_text().splitlines())
    sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert key == {
        "onnx_sha256": sha,
        "gpu": "NVIDIA H100 80GB HBM3, 9.0",
        "tensorrt": "TensorRT v100800 b43",
        "profile": "features min=1 opt=512 max=1024",
        "precision": "fp16",
    }
    result = run_build_plan(repo, tmp_path)
    assert result.returncode == 0 and builds(tmp_path) == 1 and "up to date" in result.stdout
    changes: list[dict[str, str]] = [
        {"FAKE_GPU": "NVIDIA L4, 8.9"},
        {"FAKE_TRT": "v100900"},
        {"TRT_OPT_BATCH": "256"},
        {"TRT_MAX_BATCH": "2048"},
        {"TRT_MIN_BATCH": "2"},
        {"TRT_FP16": "0"},
    ]
    for n, change in enumerate(changes, start=2):
        assert run_build_plan(repo, tmp_path, **change).returncode == 0
        assert builds(tmp_path) == n, change
        assert run_build_plan(repo, tmp_path, **change).returncode == 0
        assert builds(tmp_path) == n, f"{change}: rebuilt although the key matched"
    retrained = onnx_lib.load(repo / "ranker" / "1" / "model.onnx")
    retrained.doc_string = "retrained"  # new bytes, same width
    onnx_lib.save(retrained, repo / "ranker" / "1" / "model.onnx")
    assert run_build_plan(repo, tmp_path, TRT_FP16="0").returncode == 0
    assert builds(tmp_path) == len(changes) + 2


def test_plan_cache_serves_another_pod(tmp_path: Path, onnx: Path) -> None:
    """PLAN_CACHE (the chart's plan-cache volume) holds plans by key: a second repository
    with the same ONNX copies the plan instead of building it."""
    cache = str(tmp_path / "cache")
    for pod in ("a", "b"):
        repo = write_model_repository(tmp_path / pod, onnx, RankingConfig())
        result = run_build_plan(repo, tmp_path, PLAN_CACHE=cache)
        assert result.returncode == 0, result.stderr
        assert (repo / "ranker_trt" / "1" / "model.plan").read_text() == "plan\n"
    assert builds(tmp_path) == 1 and "from the cache" in result.stdout


def test_build_plan_builds_only_the_versions_asked_for(tmp_path: Path, onnx: Path) -> None:
    repo = write_model_repository(tmp_path / "repo", onnx, RankingConfig(), versions=[1, 2, 3])
    assert run_build_plan(repo, tmp_path, TRT_VERSIONS="3").returncode == 0
    assert [p.name for p in (repo / "ranker_trt").iterdir() if p.is_dir()] == ["3"]
    result = run_build_plan(repo, tmp_path, TRT_VERSIONS="7")
    assert result.returncode == 2 and "ranker/7/model.onnx: missing" in result.stderr


def test_width_is_read_without_onnx_installed(tmp_path: Path, onnx: Path) -> None:
    """The TensorRT image may lack the onnx package: the script's wire-format reader gives
    the same width as onnx (the system python3 -S sees no site-packages)."""
    wrapper = tmp_path / "bare-python"
    wrapper.write_text('#!/usr/bin/env bash\nexec python3 -S "$@"\n')
    wrapper.chmod(0o755)
    probe = subprocess.run([str(wrapper), "-c", "import onnx"], capture_output=True, check=False)
    assert probe.returncode != 0  # really without onnx
    repo = write_model_repository(tmp_path / "repo", onnx, RankingConfig())
    result = run_build_plan(repo, tmp_path, TRT_PYTHON=str(wrapper))
    assert result.returncode == 0, result.stderr
    assert f"--maxShapes=features:1024x{D}" in (tmp_path / "calls.txt").read_text()
    result = run_build_plan(repo, tmp_path, TRT_PYTHON=str(wrapper), TRT_INPUT_NAME="nope")
    assert result.returncode == 2 and "no input named 'nope'" in result.stderr


def test_trtexec_lookup_order_and_error(tmp_path: Path, onnx: Path) -> None:
    """TRTEXEC wins, then /usr/src/tensorrt/bin/trtexec, then PATH; absent, the error names
    both places and what to do."""
    repo = write_model_repository(tmp_path / "repo", onnx, RankingConfig())
    bin_dir = fake_bin(tmp_path)
    only_smi = tmp_path / "smi"
    only_smi.mkdir()
    (only_smi / "nvidia-smi").symlink_to(bin_dir / "nvidia-smi")
    system = f"{only_smi}:/usr/bin:/bin"
    if not Path("/usr/src/tensorrt/bin/trtexec").exists():
        missing = run_build_plan(repo, tmp_path, path=system)
        assert missing.returncode == 2
        assert "/usr/src/tensorrt/bin/trtexec" in missing.stderr
        assert "not on PATH" in missing.stderr and "TRTEXEC=" in missing.stderr
    explicit = run_build_plan(repo, tmp_path, path=system, TRTEXEC=str(bin_dir / "trtexec"))
    assert explicit.returncode == 0, explicit.stderr and builds(tmp_path) == 1
    bad = run_build_plan(repo, tmp_path, TRTEXEC=str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "nowhere is not an executable" in bad.stderr


def test_build_plan_fails_clearly_without_a_gpu(tmp_path: Path, onnx: Path) -> None:
    repo = write_model_repository(tmp_path / "repo", onnx, RankingConfig())
    bin_dir = fake_bin(tmp_path)
    no_smi = tmp_path / "trt-only"
    no_smi.mkdir()
    (no_smi / "trtexec").symlink_to(bin_dir / "trtexec")
    result = run_build_plan(repo, tmp_path, path=f"{no_smi}:/usr/bin:/bin")
    assert result.returncode == 2 and "nvidia-smi not found" in result.stderr
    result = run_build_plan(repo, tmp_path, FAKE_GPU="")
    assert result.returncode == 2 and "lists no GPU" in result.stderr
    assert builds(tmp_path) == 0


def test_build_plan_fails_clearly_without_onnx(tmp_path: Path) -> None:
    repo = write_model_repository(tmp_path / "repo", None, RankingConfig(), input_dim=D)
    result = run_build_plan(repo, tmp_path)
    assert result.returncode == 2 and "model.onnx" in result.stderr


def test_the_chart_ships_the_generated_script() -> None:
    """The chart's initContainer and plan Jobs run exactly the script the writer generates."""
    chart_copy = REPO_ROOT / "charts" / "vidrec" / "files" / "build_plan.sh"
    assert chart_copy.read_text() == build_plan_script(RankingConfig())


def test_bad_settings_name_the_field(tmp_path: Path, onnx: Path) -> None:
    bad = dataclasses.replace(RankingConfig(), preferred_batch_sizes=(512, 4096))
    with pytest.raises(ValueError, match=r"preferred_batch_sizes: \[4096\]"):
        write_model_repository(tmp_path, onnx, bad)
    with pytest.raises(ValueError, match=r"ranker.onnx: input width 20 != input_dim 21"):
        write_model_repository(tmp_path, onnx, RankingConfig(), input_dim=21)
    with pytest.raises(ValueError, match="input_dim"):
        write_model_repository(tmp_path, None, RankingConfig())


def tree(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and p.suffix not in WEIGHTS and "__pycache__" not in p.parts
    }


def test_committed_repository_matches_the_writer(tmp_path: Path) -> None:
    committed = parse(COMMITTED / "ranker" / "config.pbtxt")
    input_dim = committed.input[0].dims[0]
    main([str(tmp_path), "--input-dim", str(input_dim)])
    expected, actual = tree(tmp_path), tree(COMMITTED)
    assert sorted(actual) == sorted(expected)
    drifted = [name for name in expected if not filecmp.cmp(expected[name], actual[name], False)]
    regenerate = (
        f"python -m vidrec.ranking.model_repository model_repository --input-dim {input_dim}"
    )
    assert drifted == [], f"committed repository drifted; regenerate: {regenerate}"
    assert os.access(COMMITTED / "ranker_trt" / "build_plan.sh", os.X_OK)
