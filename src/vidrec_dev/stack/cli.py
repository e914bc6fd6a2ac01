"""``vidrec stack up|down|status``: the local stack from the command line.

Added to the main app with ``app.add_typer(stack_app, name="stack")``. A :class:`StackError`
prints its message (which names the service and its log) and exits with code 1, no traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from vidrec.cli_support import exits_on
from vidrec.config import Config, load_config
from vidrec_dev.stack.process import StackError
from vidrec_dev.stack.services import SERVICE_NAMES

stack_app = typer.Typer(
    help="The local serving stack (Redis, Triton, BentoML, gRPC, Prometheus on 127.0.0.1).",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
EXIT_STACK = 1


_friendly = exits_on({StackError: (EXIT_STACK, lambda exc: f"[bold red]error:[/] {exc}")})


RunDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Where logs, pidfiles and stack.json live"
        " (default: VIDREC_STACK__RUN_DIR, runs/local).",
    ),
]


def _config(run_dir: Path | None, standalone_redis: bool = False) -> Config:
    cfg = load_config()
    stack = cfg.stack
    if run_dir is not None:
        stack = dataclasses.replace(stack, run_dir=run_dir)
    if standalone_redis:
        stack = dataclasses.replace(stack, redis_cluster=False)
    return dataclasses.replace(cfg, stack=stack)


def parse_only(only: str | None) -> set[str] | None:
    """``"redis, triton"`` → ``{"redis", "triton"}``; None/empty means every service."""
    if not only:
        return None
    return {name.strip() for name in only.split(",") if name.strip()} or None


@stack_app.command("up")
@_friendly
def up(
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help=f"Comma-separated services to start (default all): {','.join(SERVICE_NAMES)}."
            " Their dependencies must be selected too or already running.",
        ),
    ] = None,
    standalone_redis: Annotated[
        bool,
        typer.Option(
            "--standalone-redis", help="One redis-server instead of a 3-master Redis Cluster."
        ),
    ] = False,
    artefacts: Annotated[
        Path | None,
        typer.Option(
            "--artefacts",
            help="Artefact dir from `vidrec pipeline run`"
            " (default: VIDREC_SERVING__ARTEFACTS_DIR).",
        ),
    ] = None,
    run_dir: RunDirOpt = None,
) -> None:
    """Start the stack in the background and wait until every service is healthy.

    Services keep running after this command returns; already-running ones are kept.
    """
    from vidrec_dev.stack.runner import Stack

    cfg = _config(run_dir, standalone_redis)
    Stack(cfg, artefacts or cfg.serving.artefacts_dir, console=out).up(parse_only(only))


@stack_app.command("down")
@_friendly
def down(run_dir: RunDirOpt = None) -> None:
    """Stop every service the stack started (found through its pidfiles). Safe to repeat."""
    from vidrec_dev.stack.runner import Stack

    cfg = _config(run_dir)
    stopped = Stack(cfg, cfg.serving.artefacts_dir).down()
    err.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("status")
@_friendly
def status(run_dir: RunDirOpt = None) -> None:
    """Show each service's URL, pid and health; exit 1 if any recorded service is down."""
    from vidrec_dev.stack.runner import Stack, status_table

    cfg = _config(run_dir)
    rows = Stack(cfg, cfg.serving.artefacts_dir).status()
    if not rows:
        err.print(f"no stack recorded in {cfg.stack.run_dir}")
        return
    out.print(status_table(rows))
    if any(r.pid is not None and not (r.alive and r.healthy is not False) for r in rows):
        raise typer.Exit(EXIT_STACK)


@stack_app.command("feed")
@_friendly
def feed(
    user: Annotated[int, typer.Option(help="A KuaiRec user id (0 has real interactions).")] = 0,
    count: Annotated[int, typer.Option(help="Items to show.")] = 10,
    run_dir: RunDirOpt = None,
) -> None:
    """Print a real home feed from the running stack, with captions and explanations."""
    from vidrec_dev.stack.feed import print_feed
    from vidrec_dev.stack.run_record import read_stack_state

    cfg = _config(run_dir)
    state = read_stack_state(cfg.stack.run_dir)
    if state is None or "recommender" not in state.services:
        raise StackError("the recommender is not running: start it with `vidrec stack up`")
    print_feed(state.url("recommender"), user, count, cfg.data.kuairec_dir)


@stack_app.command("idle-cpu")
@_friendly
def idle_cpu(
    seconds: Annotated[float, typer.Option(help="How long to measure; send no traffic.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    run_dir: RunDirOpt = None,
) -> None:
    """CPU ms per second each running service spends with no traffic (whole process trees)."""
    import json

    from vidrec_dev.stack.idle import idle_table, measure_idle_cpu, service_roots

    cfg = _config(run_dir)
    result = measure_idle_cpu(service_roots(cfg.stack.run_dir), seconds)
    if as_json:
        out.print_json(json.dumps(result.to_json()))
    else:
        out.print(idle_table(result))
