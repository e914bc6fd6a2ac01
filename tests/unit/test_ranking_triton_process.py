"""tritonserver command line, environment and backend directory (no server started)."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import pytest

from vidrec.ranking.triton_process import (
    STUB,
    TritonPorts,
    prepare_backend_dir,
    triton_command,
    tritonserver_binary,
)


def test_backend_dir_has_this_pythons_stub(tmp_path: Path) -> None:
    backends = prepare_backend_dir(tmp_path / "backends")
    python = backends / "python"
    assert (python / "libtriton_python.so").is_file()
    assert (python / "triton_python_backend_utils.py").is_file()
    assert os.access(python / STUB, os.X_OK)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    original = tritonserver_binary().parents[1] / "python_backend_stubs" / version / STUB
    assert (python / STUB).read_bytes() == original.read_bytes()
    prepare_backend_dir(tmp_path / "backends")  # idempotent: a second call must not fail


def test_command_binds_localhost_and_loads_only_named_models(tmp_path: Path) -> None:
    ports = TritonPorts.free()
    assert len({ports.http, ports.grpc, ports.metrics}) == 3
    argv, env = triton_command(tmp_path, ports, backend_dir=tmp_path / "b", models=["ranker"])
    assert Path(argv[0]) == tritonserver_binary() and os.access(argv[0], os.X_OK)
    flags = dict(a.split("=", 1) for a in argv[1:])
    assert flags["--model-control-mode"] == "explicit" and flags["--load-model"] == "ranker"
    for endpoint in ("http", "grpc", "metrics"):
        assert flags[f"--{endpoint}-address"] == "127.0.0.1"
        assert flags[f"--{endpoint}-port"] == str(getattr(ports, endpoint))
    assert flags["--model-repository"] == str(tmp_path.resolve())
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == sysconfig.get_config_var("LIBDIR")
    # Two servers on one host must not share python-backend shared-memory regions.
    again, _ = triton_command(tmp_path, ports, backend_dir=tmp_path / "b")
    shm = [a for a in argv if "shm-region-prefix-name" in a]
    assert len(shm) == 1 and shm[0] not in again


def test_missing_repository_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        triton_command(tmp_path / "nowhere", TritonPorts(1, 2, 3), backend_dir=tmp_path)
