"""``vidrec gpu check``: the TensorRT serving path, end to end, on one GPU node.

The TensorRT path (plan build, ``ranker_trt`` on Triton) has never been executed on the
machines this project is developed on: there is no GPU there. This check is what to run on a
GPU node before trusting it. It

1. builds the plan from the artefacts' ranker ONNX with the very ``build_plan.sh`` the chart
   runs (keyed, width read from the ONNX, trtexec at TRTEXEC / the NGC path / PATH);
2. scores ``rows`` real feature rows (the artefacts' ``eval_sample.npz``) with the plan —
   loaded as ``ranker_trt`` in ``tritonserver`` when it has the TensorRT backend, else
   through the ``tensorrt`` Python API — and with ONNX Runtime on the CPU, and compares them;
3. measures throughput with and without dynamic batching (Triton: two copies of the model,
   with and without ``dynamic_batching``, under concurrent clients; the Python API: each
   request alone vs. consecutive requests merged up to ``max_batch_size``, the in-process
   equivalent of what Triton's batcher does);
4. writes a JSON report and prints a table.

Tolerance: FP16 plans keep ~3 significant digits (10-bit mantissa, relative step ~1e-3);
through a few layers of ~200-wide matmuls the logits drift by up to ~1e-2 relative, and the
sigmoid (slope <= 0.25) shrinks that on the probabilities the ranker outputs. A max absolute
difference of 1e-2 on a probability moves a blended score far less than the gaps that order
500 candidates, while a wrong input layout or a broken plan gives errors of 0.1-1. FP32
plans are held to the 1e-4 the ONNX export is held to against torch.

Without a GPU (or trtexec, or a way to run the plan) it exits non-zero naming each missing
piece and what to do; that path, the report and the comparison (ONNX Runtime standing in for
the plan on both sides) are what the unit tests execute.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vidrec.config import RankingConfig, ServingConfig
from vidrec.errors import InputError
from vidrec.ranking.model_repository import (
    BUILD_PLAN_SCRIPT,
    CONFIG_FILE,
    PLAN_FILE,
    PLAN_KEY_FILE,
    RANKER_TRT_MODEL,
    config_text,
    parse_config,
    write_model_repository,
)
from vidrec.ranking.sessions import cpu_session, ranker_input_width
from vidrec.ranking.signature import RANKER_INPUT, RANKER_OUTPUT

FP16_TOLERANCE = 1e-2
FP32_TOLERANCE = 1e-4
DEFAULT_ROWS = 1000
NGC_TRTEXEC = Path("/usr/src/tensorrt/bin/trtexec")
NGC_TRITON_BACKENDS = Path("/opt/tritonserver/backends")
NOBATCH_MODEL = f"{RANKER_TRT_MODEL}_nobatch"
# Candidate sets as serving sends them, and a small one where batching has room to merge.
DEFAULT_REQUEST_ROWS = (32, ServingConfig().rank_top_n)

Scorer = Callable[[np.ndarray], np.ndarray]
Runner = Literal["triton", "tensorrt"]


@dataclass(frozen=True)
class Missing:
    what: str
    fix: str


class GpuUnavailable(RuntimeError):
    """This machine cannot run the check; the message lists every missing piece."""

    def __init__(self, missing: Sequence[Missing]) -> None:
        self.missing = list(missing)
        lines = "\n".join(f"  - {m.what}: {m.fix}" for m in self.missing)
        super().__init__(
            "vidrec gpu check needs an NVIDIA GPU node; missing here:\n"
            f"{lines}\n"
            "Run it on a GPU node inside nvcr.io/nvidia/tritonserver:<release>-py3 (Triton with "
            "the TensorRT backend) with trtexec from nvcr.io/nvidia/tensorrt:<release>-py3 "
            "(TRTEXEC=...), e.g. as a pod with nvidia.com/gpu: 1 (docs/operations.md)."
        )


@dataclass(frozen=True)
class Environment:
    gpu: str
    trtexec: Path
    runner: Runner
    tritonserver: Path | None
    backend_dir: Path | None


def find_trtexec(env: Mapping[str, str]) -> Path | None:
    """TRTEXEC, else the NGC images' path, else PATH (the order build_plan.sh uses)."""
    if env.get("TRTEXEC"):
        found = shutil.which(env["TRTEXEC"])
        return Path(found) if found else None
    if os.access(NGC_TRTEXEC, os.X_OK):
        return NGC_TRTEXEC
    found = shutil.which("trtexec", path=env.get("PATH"))
    return Path(found) if found else None


def _gpu_name(env: Mapping[str, str]) -> tuple[str | None, Missing | None]:
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        fix = "not on PATH: install the NVIDIA driver, or run in a container given a GPU"
        return None, Missing("nvidia-smi", fix)
    result = subprocess.run(
        [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(env),
    )
    name = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    if result.returncode != 0 or not name:
        detail = (result.stderr or result.stdout).strip()[:200] or "no GPU listed"
        return None, Missing("GPU", f"nvidia-smi sees none ({detail}): request nvidia.com/gpu")
    return name, None


def find_triton(env: Mapping[str, str]) -> tuple[Path | None, Path | None]:
    """``tritonserver`` and a backend directory holding ``tensorrt/`` (TRITON_BACKENDS, else
    the NGC path); the pip wheel's server has no TensorRT backend, so it does not count."""
    server = shutil.which("tritonserver", path=env.get("PATH"))
    backends = Path(env.get("TRITON_BACKENDS", str(NGC_TRITON_BACKENDS)))
    if server is None or not (backends / "tensorrt").is_dir():
        return None, None
    return Path(server), backends


def detect(env: Mapping[str, str] | None = None) -> Environment:
    """What this machine has; raises :class:`GpuUnavailable` naming everything missing."""
    env = dict(os.environ if env is None else env)
    missing: list[Missing] = []
    gpu, problem = _gpu_name(env)
    if problem:
        missing.append(problem)
    trtexec = find_trtexec(env)
    if trtexec is None:
        where = (
            f"TRTEXEC={env['TRTEXEC']} is not executable"
            if env.get("TRTEXEC")
            else (f"not at {NGC_TRTEXEC} and not on PATH")
        )
        fix = f"{where}: use nvcr.io/nvidia/tensorrt:<release>-py3 or set TRTEXEC"
        missing.append(Missing("trtexec", fix))
    server, backends = find_triton(env)
    has_trt = importlib.util.find_spec("tensorrt") is not None
    if server is None and not has_trt:
        fix = (
            "no tritonserver with a tensorrt backend (TRITON_BACKENDS, default "
            f"{NGC_TRITON_BACKENDS}) and no `tensorrt` Python module: run in the NGC "
            "tritonserver image, or pip install tensorrt"
        )
        missing.append(Missing("TensorRT runtime", fix))
    if missing or gpu is None or trtexec is None:
        raise GpuUnavailable(missing)
    return Environment(gpu, trtexec, "triton" if server else "tensorrt", server, backends)


def find_ranker_onnx(artefacts: Path) -> Path:
    """The artefacts' FP32 ranker graph: ``models/ranker.onnx``, else the newest version in
    ``model_repository/ranker/``."""
    direct = artefacts / "models" / "ranker.onnx"
    if direct.is_file():
        return direct
    versions = sorted(
        (p for p in (artefacts / "model_repository" / "ranker").glob("*/model.onnx")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
    )
    if not versions:
        raise InputError(
            f"{artefacts}: no models/ranker.onnx or model_repository/ranker/<v>/model.onnx; "
            "build the demo artefacts first (make demo / vidrec pipeline run --out DIR)"
        )
    return versions[-1]


def sample_rows(artefacts: Path, rows: int, width: int) -> tuple[np.ndarray, str]:
    """``rows`` real ranker inputs from ``models/eval_sample.npz`` (else seeded noise, said so)."""
    sample = artefacts / "models" / "eval_sample.npz"
    if sample.is_file():
        with np.load(sample) as data:
            x = np.asarray(data["ranker_x"], dtype=np.float32)
        if x.shape[1] == width and len(x) >= rows:
            return np.ascontiguousarray(x[:rows]), f"{sample} (first {rows} rows)"
    rng = np.random.default_rng(7)
    return rng.standard_normal((rows, width), dtype=np.float32), "seeded N(0,1) noise"


@dataclass(frozen=True)
class Comparison:
    rows: int
    tolerance: float
    max_abs_diff: float
    mean_abs_diff: float
    max_abs_diff_per_head: dict[str, float]
    passed: bool


def compare_scores(
    reference: np.ndarray, candidate: np.ndarray, tolerance: float, heads: Sequence[str]
) -> Comparison:
    """Element-wise agreement of two [rows, heads] probability arrays."""
    if reference.shape != candidate.shape:
        raise ValueError(f"score shapes differ: {reference.shape} vs {candidate.shape}")
    if reference.shape[1] != len(heads):
        raise ValueError(f"{reference.shape[1]} score columns for heads {list(heads)}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    finite = bool(np.isfinite(candidate).all())
    max_abs = float(diff.max()) if finite else float("inf")
    return Comparison(
        rows=int(reference.shape[0]),
        tolerance=tolerance,
        max_abs_diff=max_abs,
        mean_abs_diff=float(diff.mean()) if finite else float("inf"),
        max_abs_diff_per_head={h: float(diff[:, i].max()) for i, h in enumerate(heads)},
        passed=finite and max_abs <= tolerance,
    )


@dataclass(frozen=True)
class Throughput:
    mode: str  # "dynamic batching" | "no batching"
    rows_per_request: int
    requests: int
    seconds: float
    requests_per_s: float
    rows_per_s: float


def merged_batches(requests: Sequence[np.ndarray], max_batch: int) -> list[list[np.ndarray]]:
    """Consecutive requests grouped while their rows fit ``max_batch`` (never split one)."""
    groups: list[list[np.ndarray]] = []
    rows = 0
    for r in requests:
        if not groups or rows + len(r) > max_batch:
            groups.append([])
            rows = 0
        groups[-1].append(r)
        rows += len(r)
    return groups


def measure_in_process(
    score: Scorer, requests: Sequence[np.ndarray], *, max_batch: int, batched: bool
) -> Throughput:
    """Throughput of ``score`` over ``requests``: each alone, or merged up to ``max_batch``
    and split back (what a dynamic batcher does, without its queueing)."""
    start = time.perf_counter()
    if batched:
        for group in merged_batches(requests, max_batch):
            out = score(np.concatenate(group))
            np.split(out, np.cumsum([len(r) for r in group])[:-1])
    else:
        for r in requests:
            score(r)
    return _throughput("dynamic batching" if batched else "no batching", requests, start)


def _throughput(mode: str, requests: Sequence[np.ndarray], start: float) -> Throughput:
    seconds = max(time.perf_counter() - start, 1e-9)
    rows = sum(len(r) for r in requests)
    return Throughput(
        mode, len(requests[0]), len(requests), seconds, len(requests) / seconds, rows / seconds
    )


def ort_scorer(onnx: Path, threads: int = 1) -> Scorer:
    session = cpu_session(onnx, threads)

    def score(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([RANKER_OUTPUT], {RANKER_INPUT: x})[0])

    return score


def tensorrt_scorer(plan: Path) -> Scorer:  # pragma: no cover - needs a GPU (not executed here)
    """Run the plan through the TensorRT Python API; device buffers come from torch (CUDA)."""
    import tensorrt as trt
    import torch

    if not torch.cuda.is_available():
        raise GpuUnavailable([Missing("CUDA for torch", "install a CUDA build of torch")])
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())
    context = engine.create_execution_context()
    stream = torch.cuda.Stream()

    def score(x: np.ndarray) -> np.ndarray:
        inp = torch.from_numpy(x).cuda()
        out = torch.empty((len(x), engine.get_tensor_shape(RANKER_OUTPUT)[1]), device="cuda")
        context.set_input_shape(RANKER_INPUT, tuple(inp.shape))
        context.set_tensor_address(RANKER_INPUT, inp.data_ptr())
        context.set_tensor_address(RANKER_OUTPUT, out.data_ptr())
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return out.cpu().numpy()

    return score


@dataclass
class Report:
    gpu: str
    runner: str
    onnx: str
    plan: str
    plan_key: dict[str, str]
    input_source: str
    comparison: Comparison
    throughput: list[Throughput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def write_report(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return path


def report_table(report: Report) -> str:
    """The report as plain text: what ran, the comparison verdict, the throughput rows."""
    c = report.comparison
    verdict = "PASS" if c.passed else "FAIL"
    lines = [
        f"GPU: {report.gpu}    runner: {report.runner}",
        f"plan: {report.plan}  ({report.plan_key.get('tensorrt', '?')}, "
        f"{report.plan_key.get('precision', '?')})",
        f"scores vs ONNX Runtime on {c.rows} rows ({report.input_source}): max |diff| "
        f"{c.max_abs_diff:.2e}, mean {c.mean_abs_diff:.2e}, tolerance {c.tolerance:g} -> "
        f"{verdict}",
        "",
        f"{'mode':<18}{'rows/request':>13}{'requests':>10}{'req/s':>12}{'rows/s':>14}",
    ]
    for t in report.throughput:
        lines.append(
            f"{t.mode:<18}{t.rows_per_request:>13}{t.requests:>10}"
            f"{t.requests_per_s:>12.1f}{t.rows_per_s:>14.0f}"
        )
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def build_plan(onnx: Path, work: Path, cfg: RankingConfig, env: Environment) -> tuple[Path, str]:
    """A repository with ``onnx`` as version 1, its plan built by the chart's script."""
    repo = write_model_repository(work / "model_repository", onnx, cfg)
    run_env = {**os.environ, "TRTEXEC": str(env.trtexec)}
    result = subprocess.run(
        ["bash", str(repo / RANKER_TRT_MODEL / BUILD_PLAN_SCRIPT)],
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"build_plan.sh failed ({result.returncode}):\n{result.stderr[-3000:]}")
    version = repo / RANKER_TRT_MODEL / "1"
    return version / PLAN_FILE, (version / PLAN_KEY_FILE).read_text()


def parse_key(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def requests_of(x: np.ndarray, rows_per_request: int, count: int) -> list[np.ndarray]:
    """``count`` requests of ``rows_per_request`` rows, cycling through ``x``."""
    starts = [(i * rows_per_request) % max(len(x) - rows_per_request, 1) for i in range(count)]
    return [np.ascontiguousarray(x[s : s + rows_per_request]) for s in starts]


def run_gpu_check(
    artefacts: Path,
    out: Path,
    *,
    rows: int = DEFAULT_ROWS,
    request_rows: Sequence[int] = DEFAULT_REQUEST_ROWS,
    requests: int = 400,
    cfg: RankingConfig | None = None,
    env: Mapping[str, str] | None = None,
) -> Report:
    """Detect, build, compare, measure; write ``out`` (JSON) and return the report."""
    machine = detect(env)  # first: without a GPU nothing else is worth doing
    cfg = cfg or RankingConfig()
    onnx = find_ranker_onnx(artefacts)
    x, source = sample_rows(artefacts, rows, ranker_input_width(onnx))
    tolerance = FP16_TOLERANCE if cfg.trt_fp16 else FP32_TOLERANCE
    work = out.parent  # the plan and its key stay there: a rerun skips the build
    plan, key = build_plan(onnx, work, cfg, machine)
    reference = ort_scorer(onnx)(x)
    if machine.runner == "triton":
        scores, throughput = _on_triton(
            plan.parents[2], machine, x, cfg, request_rows, requests, work
        )
        notes = [
            "throughput: Triton, 8 concurrent gRPC clients, ranker_trt with and "
            "without dynamic_batching"
        ]
    else:
        score = tensorrt_scorer(plan)
        scores = score(x)
        throughput = [
            measure_in_process(
                score, requests_of(x, n, requests), max_batch=cfg.max_batch_size, batched=b
            )
            for n in request_rows
            for b in (False, True)
        ]
        notes = [
            "no tritonserver with a TensorRT backend: the plan ran through the "
            "tensorrt Python API; 'dynamic batching' merges consecutive requests "
            "in process"
        ]
    report = Report(
        gpu=machine.gpu,
        runner=machine.runner,
        onnx=str(onnx),
        plan=str(plan),
        plan_key=parse_key(key),
        input_source=source,
        comparison=compare_scores(reference, scores, tolerance, cfg.heads),
        throughput=throughput,
        notes=notes,
    )
    write_report(report, out)
    return report


def _on_triton(  # pragma: no cover - needs a GPU and the NGC Triton image (not executed here)
    repo: Path,
    machine: Environment,
    x: np.ndarray,
    cfg: RankingConfig,
    request_rows: Sequence[int],
    requests: int,
    work: Path,
) -> tuple[np.ndarray, list[Throughput]]:
    """Serve ``ranker_trt`` and a copy without dynamic batching; score and measure."""
    import tritonclient.grpc as grpcclient

    from vidrec.ranking.triton_process import TritonPorts, TritonProcess

    config = parse_config(repo / RANKER_TRT_MODEL / CONFIG_FILE)
    nobatch = replace_config(config, NOBATCH_MODEL)
    (repo / NOBATCH_MODEL / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(
        repo / RANKER_TRT_MODEL / "1" / PLAN_FILE, repo / NOBATCH_MODEL / "1" / PLAN_FILE
    )
    (repo / NOBATCH_MODEL / CONFIG_FILE).write_text(config_text(nobatch, x.shape[1]))
    ports = TritonPorts.free()
    argv = [
        str(machine.tritonserver),
        f"--model-repository={repo}",
        f"--backend-directory={machine.backend_dir}",
        "--model-control-mode=explicit",
        f"--load-model={RANKER_TRT_MODEL}",
        f"--load-model={NOBATCH_MODEL}",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        "--strict-readiness=true",
    ]
    with TritonProcess(argv, dict(os.environ), ports, work / "triton.log").start(300) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)

        def scorer(model: str) -> Scorer:
            def score(batch: np.ndarray) -> np.ndarray:
                inp = grpcclient.InferInput(RANKER_INPUT, list(batch.shape), "FP32")
                inp.set_data_from_numpy(batch)
                result = client.infer(
                    model, [inp], outputs=[grpcclient.InferRequestedOutput(RANKER_OUTPUT)]
                )
                return np.asarray(result.as_numpy(RANKER_OUTPUT))

            return score

        scores = np.concatenate(
            [
                scorer(RANKER_TRT_MODEL)(x[i : i + cfg.max_batch_size])
                for i in range(0, len(x), cfg.max_batch_size)
            ]
        )
        throughput = []
        for n in request_rows:
            reqs = requests_of(x, n, requests)
            for model, mode in (
                (NOBATCH_MODEL, "no batching"),
                (RANKER_TRT_MODEL, "dynamic batching"),
            ):
                throughput.append(measure_concurrent(scorer(model), reqs, 8, mode))
        client.close()
    return scores, throughput


def replace_config(config: Any, name: str) -> Any:
    """A copy of a model config under ``name`` without dynamic batching."""
    copy = type(config)()
    copy.CopyFrom(config)
    copy.name = name
    copy.ClearField("dynamic_batching")
    return copy


def measure_concurrent(
    score: Scorer, requests: Sequence[np.ndarray], clients: int, mode: str
) -> Throughput:
    """``requests`` sent by ``clients`` threads at once: the load a batcher can merge (a
    failed request fails the measurement)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(score, r) for r in requests]:
            future.result()
    return _throughput(mode, requests, start)
