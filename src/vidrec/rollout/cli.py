"""``vidrec rollout status|promote|abort|pause|resume NAME``: manual control of a rollout.

Added to the main app with ``app.add_typer(rollout_app, name="rollout")``. The commands
write the ``vidrec.io/command`` annotation; the operator feeds it to the same engine on its
next tick (``abort`` rolls back at once) and clears it. Only the operator writes status.
The cluster is the one in ``$KUBECONFIG`` (read when the command runs) or ``~/.kube/config``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vidrec.cli_support import exits_on

GROUP, VERSION, PLURAL = "vidrec.io", "v1alpha1", "modelrollouts"
EXIT_API = 1

rollout_app = typer.Typer(help="Model rollouts (ModelRollout resources).", no_args_is_help=True)
out = Console()
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the rollout.")]
Name = Annotated[str, typer.Argument(help="ModelRollout name.")]
Local = Annotated[
    bool, typer.Option("--local", help="A rollout run by `vidrec rollout run --local`.")
]


def _local(name: str) -> Any:
    from vidrec.config import load_config
    from vidrec.rollout.local import LocalRollout

    return LocalRollout(name, load_config().stack.run_dir / "rollouts")


class RolloutApiError(RuntimeError):
    """The API server refused or could not be reached; the message says which and why."""


def _custom_api() -> Any:
    from kubernetes import client, config

    config_file = os.environ.get("KUBECONFIG")  # the client fixes its default at import
    return client.CustomObjectsApi(config.new_client_from_config(config_file=config_file))


def _call(what: str, name: str, fn: Any, *args: Any) -> Any:
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args)
    except ApiException as exc:
        raise RolloutApiError(f"{what} {name}: {exc.status} {exc.reason}") from exc
    except HTTPError as exc:
        raise RolloutApiError(f"{what} {name}: API server unreachable ({exc})") from exc


def get_rollout(name: str, namespace: str) -> dict[str, Any]:
    api = _custom_api()
    fn = api.get_namespaced_custom_object
    return dict(_call("get", name, fn, GROUP, VERSION, namespace, PLURAL, name))


def send_command(name: str, namespace: str, command: str) -> None:
    """Write the command annotation (the operator consumes it)."""
    from vidrec.rollout.operator import COMMAND_ANNOTATION, COMMANDS  # heavy: only when used

    if command not in COMMANDS:
        raise ValueError(f"command: must be one of {COMMANDS}, got {command!r}")
    body = {"metadata": {"annotations": {COMMAND_ANNOTATION: command}}}
    api = _custom_api()
    fn = api.patch_namespaced_custom_object
    _call(command, name, fn, GROUP, VERSION, namespace, PLURAL, name, body)


def status_table(obj: dict[str, Any], last: int = 6) -> Table:
    """Phase, step, weight, message and the latest analysis results."""
    status = obj.get("status") or {}
    table = Table(title=f"{obj['metadata']['name']} ({status.get('phase', 'not yet seen')})")
    table.add_column("field")
    table.add_column("value")
    for label, key in (("phase", "phase"), ("step", "currentStep"), ("weight", "canaryWeight")):
        table.add_row(label, str(status.get(key, "-")))
    for record in (status.get("analysisHistory") or [])[-last:]:
        table.add_row(f"analysis {record.get('metric')}", f"{record.get('verdict')}: "
                      f"{record.get('reason') or record.get('value')}")  # fmt: skip
    table.add_row("message", status.get("message", ""))
    return table


_ON_ERROR = exits_on({RolloutApiError: (EXIT_API, str), ValueError: (2, str)})  # InputError too


@rollout_app.command()
@_ON_ERROR
def status(name: Name, namespace: Namespace = "default", local: Local = False) -> None:
    """Show a rollout: phase, step, weight, the latest analysis results, its message."""
    if local:
        obj = {"metadata": {"name": name}, "status": _local(name).read_status() or {}}
    else:
        obj = get_rollout(name, namespace)
    out.print(status_table(obj))


def _command(command: str, doc: str) -> None:
    @rollout_app.command(name=command, help=doc)
    @_ON_ERROR
    def run(name: Name, namespace: Namespace = "default", local: Local = False) -> None:
        if local:
            _local(name).send(command)
        else:
            send_command(name, namespace, command)
        out.print(f"{command} sent to {name}; `vidrec rollout status {name}` to follow")


_command("promote", "Skip the remaining steps and gates: all traffic to the candidate.")
_command("abort", "Roll back at once: all traffic to stable, the candidate unloaded.")
_command("pause", "Hold the rollout at its current weight.")
_command("resume", "Continue a paused rollout (also passes an indefinite pause step).")


@rollout_app.command("run")
@_ON_ERROR
def run_local_cmd(
    manifest: Annotated[Path, typer.Argument(help="A ModelRollout YAML manifest.")],
    local: Annotated[
        bool, typer.Option("--local", help="Required: run the engine here, no Kubernetes.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 3600.0,
) -> None:
    """Run a rollout against the local stack (`vidrec stack up`): real Prometheus, Triton
    versions and the Redis routing table, the operator's own tick, status in a file."""
    from vidrec.rollout.local import run_local

    if not local:
        raise ValueError("--local: in a cluster the operator runs rollouts; pass --local here")
    directory = _local("").directory

    def show(result: Any) -> None:
        for event in result.events:
            out.print(f"[bold]{event.reason}[/]: {event.message}")

    final = run_local(manifest, directory, timeout_s=timeout, on_tick=show)
    out.print(f"{manifest.stem}: {final.phase} — {final.status.get('message', '')}")
