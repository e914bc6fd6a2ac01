"""ONNX Runtime sessions configured for CPU serving and measurement.

One thread per session by default: Triton runs several model instances and the request
pipeline runs several workers, so each session should not grab every core.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from vidrec.ranking.signature import RANKER_INPUT


def cpu_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """An ORT session on the CPU provider with ``threads`` intra-op threads."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: ONNX model not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ranker_input_width(path: str | Path) -> int:
    """The fixed feature width D of the ranker ONNX input ``features`` [B, D]."""
    inputs = {i.name: i.shape for i in cpu_session(path).get_inputs()}
    if RANKER_INPUT not in inputs:
        raise ValueError(f"{path}: no input named {RANKER_INPUT!r} (has {sorted(inputs)})")
    shape = inputs[RANKER_INPUT]
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise ValueError(f"{path}: input {RANKER_INPUT!r} has shape {shape}, expected [B, D]")
    return int(shape[1])
