"""Local mode: the operator's own tick, without Kubernetes, against the local stack.

`vidrec rollout run --local ROLLOUT.yaml` reads a ModelRollout manifest, builds the same
dependencies as the operator (router, metric providers, Triton models) and calls the same
:func:`vidrec.rollout.operator.tick` every ``rollout.tick_s``. The status lives in
``<run_dir>/rollouts/<name>.json`` (what `kubectl get mro` would show), and
`vidrec rollout promote|abort|pause|resume NAME --local` drop a command file the next tick
consumes — so one person on one machine can watch a canary progress or roll back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vidrec.errors import InputError
from vidrec.rollout.operator import OperatorSettings, TickResult, build_deps, check_command, tick
from vidrec.rollout.spec import Phase, RolloutSpec

TERMINAL = {Phase.SUCCEEDED.value, Phase.ROLLED_BACK.value, Phase.FAILED.value}


@dataclass(frozen=True)
class LocalRollout:
    """Where one local rollout keeps its status and receives commands."""

    name: str
    directory: Path

    @property
    def status_file(self) -> Path:
        return self.directory / f"{self.name}.json"

    @property
    def command_file(self) -> Path:
        return self.directory / f"{self.name}.command"

    def read_status(self) -> dict[str, Any] | None:
        if not self.status_file.exists():
            return None
        data: dict[str, Any] = json.loads(self.status_file.read_text())
        return data

    def write_status(self, status: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.status_file)

    def send(self, command: str) -> None:
        check_command(command)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.command_file.write_text(command + "\n")

    def take_command(self) -> str | None:
        if not self.command_file.exists():
            return None
        raw = self.command_file.read_text().strip()
        self.command_file.unlink()
        return check_command(raw)


def load_manifest(path: Path) -> tuple[str, RolloutSpec]:
    """(name, spec) of a ModelRollout manifest; a bad field is an InputError naming it."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not a readable YAML manifest ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "ModelRollout":
        raise InputError(f"{path}: field 'kind' must be ModelRollout")
    name = str((doc.get("metadata") or {}).get("name") or "")
    if not name:
        raise InputError(f"{path}: field 'metadata.name' is required")
    return name, RolloutSpec.from_dict(doc.get("spec") or {})


def run_local(
    manifest: Path,
    directory: Path,
    *,
    settings: OperatorSettings | None = None,
    timeout_s: float = 3600.0,
    on_tick: Callable[[TickResult], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> TickResult:
    """Tick until the rollout ends (Succeeded, RolledBack, Failed) or ``timeout_s`` passes."""
    name, spec = load_manifest(manifest)
    settings = settings or OperatorSettings.from_env()
    local = LocalRollout(name, directory)
    deps = build_deps(spec, "local", settings)
    deadline = time.monotonic() + timeout_s
    while True:
        result = tick(spec, local.read_status(), deps, local.take_command())
        local.write_status(result.status)
        for event in result.events:
            settings.notifier.post(event.reason, f"local/{name}: {event.message}")
        on_tick(result)
        if result.phase in TERMINAL or time.monotonic() >= deadline:
            return result
        sleep(settings.tick_s)
