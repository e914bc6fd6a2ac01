"""Test harness: the REAL tritonserver over a model repository, on free 127.0.0.1 ports.

Thin on purpose: command line, environment and readiness live in
``vidrec.ranking.triton_process`` (the local stack uses the same code).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.needs import require_binary, starts_server
from vidrec.ranking.triton_process import (
    TritonPorts,
    TritonProcess,
    prepare_backend_dir,
    triton_command,
    tritonserver_binary,
)


@contextmanager
def triton_server(
    model_repository: str | Path,
    models: Sequence[str] = ("ranker",),
    *,
    workdir: str | Path | None = None,
    timeout_s: float = 90.0,
    extra_args: Sequence[str] = (),
) -> Iterator[TritonProcess]:
    """Start tritonserver with ``models`` loaded; yield it once ready; always stop it.

    The backend dir and ``tritonserver.log`` go to ``workdir`` (a fresh temp dir by default,
    kept so a failure's log can be read).
    """
    starts_server("tritonserver")
    require_binary(tritonserver_binary(), "pip install nvidia-pytriton (scripts/setup.sh)")
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vidrec-triton-"))
    ports = TritonPorts.free()
    argv, env = triton_command(
        model_repository,
        ports,
        backend_dir=prepare_backend_dir(work / "backends"),
        models=models,
        extra_args=extra_args,
    )
    with TritonProcess(argv, env, ports, log_path=work / "tritonserver.log") as server:
        server.start(timeout_s)
        yield server
