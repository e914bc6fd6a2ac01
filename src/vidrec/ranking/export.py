"""Export the ranker and the user tower to ONNX with a dynamic batch axis, and prove it.

Serving sends one request per page view with as many rows as there are candidates, so the
batch axis must be dynamic; every other axis is fixed by the feature spec. The TorchScript
exporter (``dynamo=False``) is used: it exports these small feed-forward graphs in ~0.1 s
(the dynamo exporter takes seconds) and yields the same Gemm-based graph.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from vidrec.ranking.sessions import cpu_session
from vidrec.ranking.signature import (
    HISTORY_INPUT,
    N_HEADS,
    RANKER_INPUT,
    RANKER_OUTPUT,
    USER_EMBEDDING_OUTPUT,
    USER_X_INPUT,
)

DEFAULT_OPSET = 17
_BATCH = "batch"


@contextmanager
def _inference(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode without gradients, restoring the caller's training flag afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _export(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    input_names: list[str],
    output_name: str,
    path: str | Path,
    opset: int,
) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: _BATCH} for name in [*input_names, output_name]}
    with _inference(module), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter" notice
        torch.onnx.export(
            module,
            example,
            str(out),
            input_names=input_names,
            output_names=[output_name],
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    return out


def _check_output(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], width: int | None
) -> None:
    """Fail before exporting when the module does not honour the serving contract:
    float32[B, width] out (any width when ``width`` is None)."""
    with _inference(module):
        y = module(*example)
    name = type(module).__name__
    if not isinstance(y, torch.Tensor) or y.dtype != torch.float32:
        raise ValueError(f"{name}.forward must return a float32 tensor, got {type(y).__name__}")
    batch = example[0].shape[0]
    if y.ndim != 2 or y.shape[0] != batch or (width is not None and y.shape[1] != width):
        expected = [batch, "E" if width is None else width]
        raise ValueError(f"{name}.forward returned shape {list(y.shape)}, expected {expected}")


def export_ranker_onnx(
    module: torch.nn.Module, input_dim: int, path: str | Path, opset: int = DEFAULT_OPSET
) -> Path:
    """Write ``module`` (``float32[B, D] -> float32[B, 3]``) as ONNX: ``features`` -> ``scores``."""
    example = (torch.zeros(2, input_dim, dtype=torch.float32),)
    _check_output(module, example, N_HEADS)
    return _export(module, example, [RANKER_INPUT], RANKER_OUTPUT, path, opset)


def export_user_tower_onnx(
    module: torch.nn.Module,
    user_dim: int,
    history_len: int,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write the user tower as ONNX: ``user_x`` float32[B, Du], ``history`` int64[B, H]
    (-1 padded) -> ``embedding`` float32[B, E]."""
    history = torch.full((2, history_len), -1, dtype=torch.int64)
    history[:, 0] = 0  # one real id, so the export traces the non-empty path too
    example = (torch.zeros(2, user_dim, dtype=torch.float32), history)
    _check_output(module, example, None)
    return _export(
        module, example, [USER_X_INPUT, HISTORY_INPUT], USER_EMBEDDING_OUTPUT, path, opset
    )


def verify_onnx(module: torch.nn.Module, path: str | Path, inputs: Sequence[np.ndarray]) -> float:
    """Max absolute difference between ``module(*inputs)`` and the ONNX model at ``path``.

    ``inputs`` are given in ``forward`` order; they feed the ONNX inputs in graph order.
    """
    session = cpu_session(path)
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ValueError(f"{path}: model has inputs {names}, got {len(inputs)} arrays")
    with _inference(module):
        expected = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs)).numpy()
    (got,) = session.run(None, dict(zip(names, inputs, strict=True)))
    if got.shape != expected.shape:
        raise ValueError(f"{path}: ONNX output shape {got.shape} != torch {expected.shape}")
    return float(np.max(np.abs(got - expected))) if got.size else 0.0
