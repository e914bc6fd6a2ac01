"""INT8 variant of the ranker ONNX graph, and what it costs in quality and gains in speed.

Static QDQ quantisation with a calibration sample, not dynamic: the exported ranker is made
of ``Gemm`` nodes, which ORT's dynamic quantiser leaves in float, while the QDQ path turns
them into fused ``QGemm`` kernels (≈2x faster at batch 500 on one CPU thread). Weights are
per-channel int8, activations uint8 with ranges calibrated on real ranker inputs.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from sklearn.metrics import roc_auc_score

from vidrec.ranking.sessions import cpu_session
from vidrec.ranking.signature import RANKER_INPUT
from vidrec.schema import RANKER_HEADS


class _ArrayReader(CalibrationDataReader):
    """Feeds the calibration sample to the quantiser in fixed-size batches."""

    def __init__(self, x: np.ndarray, batch_size: int) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [x[i : i + batch_size] for i in range(0, x.shape[0], batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {RANKER_INPUT: batch}


def _check_features(x: np.ndarray, width: int, what: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float32:
        raise ValueError(f"{what}: expected float32[N, {width}]")
    if x.shape[1] != width or x.shape[0] == 0:
        raise ValueError(f"{what}: shape {list(x.shape)}, expected [N>0, {width}]")


def quantize_ranker(
    src: str | Path, dst: str | Path, calibration: np.ndarray, *, batch_size: int = 256
) -> Path:
    """Write an INT8 (QDQ) copy of the ranker ``src`` to ``dst``.

    ``calibration`` is a float32[N, D] sample of ranker inputs (a few thousand rows of the
    training table): activation ranges come from it, so it must look like serving traffic.
    """
    session = cpu_session(src)
    width = session.get_inputs()[0].shape[1]
    _check_features(calibration, width, f"quantize_ranker calibration for {src}")
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _ArrayReader(calibration, batch_size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # 7-bit weights: u8 x s8 products of two neighbouring channels overflow the 16-bit
            # accumulator of AVX2 / AVX-512 kernels without VNNI (ONNX Runtime's advice); the
            # error was 0.3 in probability on such a CPU, 7 bits keep it below 0.05.
            reduce_range=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
    return out


@dataclass(frozen=True)
class QuantizationReport:
    """Quality and speed of the INT8 ranker against the fp32 one, measured in one run."""

    auc_fp32: dict[str, float]
    auc_int8: dict[str, float]
    max_abs_diff: float  # largest probability difference on the evaluation rows
    fp32_ms: float  # median latency of one batch, fp32
    int8_ms: float  # median latency of the same batch, int8
    batch_size: int

    @property
    def auc_delta(self) -> dict[str, float]:
        """INT8 minus fp32 AUC per head (negative = quality lost)."""
        return {h: self.auc_int8[h] - self.auc_fp32[h] for h in self.auc_fp32}

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.int8_ms

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "auc_delta": self.auc_delta, "speedup": self.speedup}


def _aucs(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for j, head in enumerate(RANKER_HEADS):
        if np.unique(labels[:, j]).shape[0] < 2:
            raise ValueError(f"compare_int8 labels: head {head!r} has a single class; no AUC")
        out[head] = float(roc_auc_score(labels[:, j], scores[:, j]))
    return out


def _median_ms_interleaved(
    sessions: tuple[ort.InferenceSession, ...], x: np.ndarray, repeats: int
) -> list[float]:
    """Median latency per session, alternating runs so load on the machine hits both alike."""
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    for s, feed in zip(sessions, feeds, strict=True):
        s.run(None, feed)  # warm-up: first run allocates
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for i, (s, feed) in enumerate(zip(sessions, feeds, strict=True)):
            t0 = time.perf_counter()
            s.run(None, feed)
            times[i].append((time.perf_counter() - t0) * 1e3)
    return [float(np.median(t)) for t in times]


def compare_int8(
    fp32_path: str | Path,
    int8_path: str | Path,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    latency_batch: int = 500,
    repeats: int = 30,
    threads: int = 1,
) -> QuantizationReport:
    """AUC per head of both models on ``(x, labels)`` and their median CPU latency on a
    ``latency_batch``-row batch. ``labels`` is int[N, 3] in ``RANKER_HEADS`` order."""
    fp32, int8 = cpu_session(fp32_path, threads), cpu_session(int8_path, threads)
    _check_features(x, fp32.get_inputs()[0].shape[1], "compare_int8 x")
    if labels.shape != (x.shape[0], len(RANKER_HEADS)):
        raise ValueError(
            f"compare_int8 labels: shape {list(labels.shape)}, expected "
            f"[{x.shape[0]}, {len(RANKER_HEADS)}]"
        )
    (p32,) = fp32.run(None, {RANKER_INPUT: x})
    (p8,) = int8.run(None, {RANKER_INPUT: x})
    batch = np.resize(x, (latency_batch, x.shape[1]))  # repeats rows if x is smaller
    fp32_ms, int8_ms = _median_ms_interleaved((fp32, int8), batch, repeats)
    return QuantizationReport(
        auc_fp32=_aucs(p32, labels),
        auc_int8=_aucs(p8, labels),
        max_abs_diff=float(np.max(np.abs(p32 - p8))),
        fp32_ms=fp32_ms,
        int8_ms=int8_ms,
        batch_size=latency_batch,
    )
