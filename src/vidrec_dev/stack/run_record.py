"""``RUN_DIR/stack.json``: what the local stack is running and where to reach it.

Written by ``vidrec stack up`` after each service is healthy; read by ``down``/``status`` in
later processes and by anything that needs the endpoints (tests, bench, ``make up``):

    state = read_stack_state(cfg.stack.run_dir)
    state.services["triton"].url, state.env["VIDREC_REDIS__URL"]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "stack.json"


@dataclass(frozen=True)
class ServiceState:
    name: str
    pid: int | None  # None for a one-shot step that already finished
    url: str
    ports: tuple[int, ...]
    log: str
    health: dict[str, Any] | None  # serialised HealthCheck; None when not serialisable
    oneshot: bool = False
    started_at: float = field(default_factory=time.time)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceState:
        return cls(**{**data, "ports": tuple(data.get("ports", ()))})


@dataclass
class StackState:
    run_dir: str
    artefacts_dir: str
    env: dict[str, str] = field(default_factory=dict)  # VIDREC_* settings of the services
    services: dict[str, ServiceState] = field(default_factory=dict)  # in start order

    def url(self, name: str) -> str:
        if name not in self.services:
            running = ", ".join(self.services) or "nothing"
            raise KeyError(f"{name!r} is not running in {self.run_dir} (running: {running})")
        return self.services[name].url


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def read_stack_state(run_dir: Path) -> StackState | None:
    """The recorded stack in ``run_dir``, or None when nothing was started there."""
    path = state_path(run_dir)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    services = {n: ServiceState.from_json(s) for n, s in data.get("services", {}).items()}
    return StackState(data["run_dir"], data["artefacts_dir"], data.get("env", {}), services)


def write_stack_state(state: StackState) -> None:
    """Atomically replace the state file (a reader never sees half a file)."""
    path = state_path(Path(state.run_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(path)
