"""Triton model repository: configs Triton can parse, I/O matching the ONNX graph, the
TensorRT build command, and no drift between the committed repository and the writer."""

from __future__ import annotations

import dataclasses
import filecmp
import os
import subprocess
from pathlib import Path

import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from vidrec.config import RankingConfig, ServingConfig
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import main, ort_config_path, write_model_repository
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


def run_build_plan(repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run build_plan.sh with a fake trtexec that records its arguments."""
    fake = tmp_path / "trtexec"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" >> "$TRTEXEC_LOG"\n')
    fake.chmod(0o755)
    env = {**os.environ, "TRTEXEC": str(fake), "TRTEXEC_LOG": str(tmp_path / "calls.txt")}
    script = repo / "ranker_trt" / "build_plan.sh"
    return subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("fp16", [True, False])
def test_build_plan_runs_trtexec_per_version(tmp_path: Path, onnx: Path, fp16: bool) -> None:
    cfg = dataclasses.replace(RankingConfig(), trt_fp16=fp16, trt_opt_batch=384)
    repo = write_model_repository(tmp_path / "repo", onnx, cfg, versions=[1, 3])
    result = run_build_plan(repo, tmp_path)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "calls.txt").read_text().splitlines()
    trt = repo.resolve() / "ranker_trt"
    for version in ("1", "3"):
        assert f"--onnx={trt}/../ranker/{version}/model.onnx" in args
        assert f"--saveEngine={trt}/{version}/model.plan" in args
        assert (trt / version).is_dir()
    assert args.count(f"--minShapes=features:1x{D}") == 2
    assert args.count(f"--optShapes=features:384x{D}") == 2
    assert args.count(f"--maxShapes=features:1024x{D}") == 2
    assert args.count("--fp16") == (2 if fp16 else 0)


def test_build_plan_fails_clearly_without_onnx(tmp_path: Path) -> None:
    repo = write_model_repository(tmp_path / "repo", None, RankingConfig(), input_dim=D)
    result = run_build_plan(repo, tmp_path)
    assert result.returncode == 2 and "model.onnx" in result.stderr


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
