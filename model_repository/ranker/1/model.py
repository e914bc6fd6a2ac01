"""Triton python-backend model: the vidrec ranker ONNX graph run by ONNX Runtime on CPU.

Copied verbatim into ``<repo>/ranker/<version>/model.py`` by
``vidrec.ranking.model_repository``; everything it needs (tensor names, head order, ORT
threads) comes from the model's ``config.pbtxt``, so one file serves every version. It runs
in Triton's python stub, which imports this file standalone: it must not import vidrec.

The dynamic batcher hands ``execute`` several requests at once; they are concatenated into
one ORT call (that is what batching buys) and the result is split back per request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

ONNX_FILE = "model.onnx"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.n_heads = len(params["heads"].split(","))
        path = Path(args["model_repository"]) / args["model_version"] / ONNX_FILE
        if not path.is_file():
            raise pb_utils.TritonModelException(f"{path}: missing (write it with vidrec build)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("ort_intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        onnx_inputs = [i.name for i in self.session.get_inputs()]
        if onnx_inputs != [self.input_name]:
            raise pb_utils.TritonModelException(
                f"{path}: ONNX inputs {onnx_inputs} do not match config input {self.input_name!r}"
            )

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [
            pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests
        ]
        try:
            batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            (scores,) = self.session.run(None, {self.input_name: batch})
        except Exception as exc:  # one bad batch must not kill the model: answer each request
            error = pb_utils.TritonError(f"ranker ONNX Runtime failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        bounds = np.cumsum([a.shape[0] for a in arrays])[:-1]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(self.output_name, np.ascontiguousarray(part))]
            )
            for part in np.split(scores.astype(np.float32, copy=False), bounds)
        ]

    def finalize(self) -> None:
        self.session = None
