"""Run the real ``tritonserver`` shipped in the ``nvidia-pytriton`` wheel, on CPU.

The wheel carries the server binary, the python backend and one backend stub per Python
version, but the stub is not where the backend looks for it. :func:`prepare_backend_dir`
assembles a backend directory (backend library + utils + the stub of *this* interpreter) in
a writable place, leaving the venv untouched, and :func:`triton_command` builds the command
line and environment:

- ``PATH`` starts with this interpreter's bin dir, so the stub's embedded Python finds the
  venv (numpy, onnxruntime) rather than the system's;
- ``LD_LIBRARY_PATH`` has this interpreter's ``LIBDIR`` (the stub links ``libpython3.x``;
  without it the system's copy is picked) and the wheel's bundled libraries;
- a unique ``shm-region-prefix-name``, so several servers on one host do not share shared
  memory regions;
- every endpoint bound to ``host`` (127.0.0.1 by default).

:class:`TritonProcess` starts the command, polls readiness and stops it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

STUB = "triton_python_backend_stub"


def pytriton_dir() -> Path:
    """The installed ``pytriton`` package directory (found without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pytriton is not installed: pip install nvidia-pytriton")
    return Path(next(iter(spec.submodule_search_locations)))


def tritonserver_binary() -> Path:
    return pytriton_dir() / "tritonserver" / "bin" / "tritonserver"


def bundled_libs_dir() -> Path:
    """Shared libraries the wheel bundles (``nvidia_pytriton.libs``), needed by the stub."""
    return pytriton_dir().parent / "nvidia_pytriton.libs"


def prepare_backend_dir(dest: str | Path) -> Path:
    """Assemble ``dest/python/`` (backend library, utils, this Python's stub); return ``dest``."""
    dist = pytriton_dir() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / STUB
    if not stub.is_file():
        raise FileNotFoundError(f"{stub}: no Triton python backend stub for Python {version}")
    python_dir = Path(dest) / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for item in (dist / "backends" / "python").iterdir():
        if item.is_file():
            shutil.copy2(item, python_dir / item.name)
    shutil.copy2(stub, python_dir / STUB)
    return Path(dest)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> TritonPorts:
        """Three ports free right now on ``host`` (the OS picks them)."""
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(_free_port(host))
        http, grpc, metrics = sorted(ports)
        return cls(http=http, grpc=grpc, metrics=metrics)


def triton_command(
    model_repository: str | Path,
    ports: TritonPorts,
    *,
    backend_dir: str | Path,
    models: Sequence[str] = ("ranker",),
    host: str = "127.0.0.1",
    log_verbose: int = 0,
    extra_args: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """argv and environment for ``tritonserver`` in explicit model-control mode.

    Only ``models`` are loaded at start (others, e.g. the GPU-only ``ranker_trt``, stay
    unloaded); more can be loaded through the repository API later.
    """
    repo = Path(model_repository)
    if not repo.is_dir():
        raise FileNotFoundError(f"{repo}: model repository not found")
    argv = [
        str(tritonserver_binary()),
        f"--model-repository={repo.resolve()}",
        f"--backend-directory={Path(backend_dir).resolve()}",
        "--model-control-mode=explicit",
        *(f"--load-model={m}" for m in models),
        f"--http-address={host}",
        f"--http-port={ports.http}",
        f"--grpc-address={host}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-address={host}",
        f"--metrics-port={ports.metrics}",
        "--allow-metrics=true",
        "--strict-readiness=true",
        "--exit-timeout-secs=5",
        f"--log-verbose={log_verbose}",
        f"--backend-config=python,shm-region-prefix-name=vidrec_{uuid.uuid4().hex[:12]}_",
        *extra_args,
    ]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (libdir, str(bundled_libs_dir()), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return argv, env


class TritonStartError(RuntimeError):
    """tritonserver exited or did not get ready; the message names its log file."""


class TritonProcess:
    """A running ``tritonserver``: start it, wait until its models are ready, stop it.

    Output goes to ``log_path``; every failure message names that file and quotes its tail.
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        ports: TritonPorts,
        log_path: str | Path,
        host: str = "127.0.0.1",
    ) -> None:
        self.argv, self.env, self.ports, self.host = argv, env, ports, host
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (the python-backend stubs are its children)."""
        return None if self._proc is None else self._proc.pid

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    def start(self, timeout_s: float = 60.0) -> TritonProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # Own process group: stop() reaches the python-backend stubs it forks too.
            self._proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, what: str) -> TritonStartError:
        tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        return TritonStartError(f"tritonserver {what}; log: {self.log_path}\n{tail}")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``/v2/health/ready`` (ready = server up and every loaded model ready)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise self._fail(f"exited with code {code} before it was ready")
            if self.is_ready():
                return
            time.sleep(0.2)
        raise self._fail(f"not ready after {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGINT (graceful), then SIGKILL to the process group if it does not exit."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)

    def __enter__(self) -> TritonProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
