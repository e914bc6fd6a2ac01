"""``vidrec bench capacity``, ``vidrec bench soak`` and ``vidrec chaos``.

Registered on the main app by :func:`register` (two lines in :mod:`vidrec.cli`). Each starts
its own stack on the load-test ports (:mod:`vidrec_dev.loadtest.stack`) over the demo artefacts
(or ``--artefacts``), unless ``--host`` points capacity at a running one (a cluster).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vidrec_dev.loadtest.sla import DEFAULT_DEGRADED_RATIO, DEFAULT_FAIL_RATIO, DEFAULT_P99_MS, Sla

out_console = Console()

P99Opt = Annotated[float, typer.Option("--sla-p99-ms", help="SLA: p99 limit in ms.")]
FailOpt = Annotated[float, typer.Option("--sla-fail-ratio", help="SLA: failure ratio limit.")]
DegradedOpt = Annotated[
    float,
    typer.Option(
        "--sla-degraded-ratio",
        help="SLA: limit on the share of recommendation answers served degraded (HTTP 200 with"
        ' "degraded": true: a stage was skipped).',
    ),
]
ArtefactsOpt = Annotated[
    Path | None,
    typer.Option(help="Artefact dir the stack serves (default: artifacts/demo)."),
]
ThinkOpt = Annotated[
    float, typer.Option("--think-ms", help="Mean wait of a user between requests.")
]
ApiKeyOpt = Annotated[
    str,
    typer.Option("--api-key", envvar="VIDREC_API_KEY", help="Bearer token sent by the load users."),
]


@contextmanager
def _target(host: str, out: Path, artefacts: Path) -> Iterator[str]:
    """``host`` when given (a running stack, a cluster), else a load-test stack of our own
    over ``artefacts`` for the duration of the block."""
    if host:
        yield host
        return
    from vidrec_dev.loadtest.stack import LoadStack, loadtest_config

    out_console.print("[bold cyan]▶[/] starting the load-test stack …")
    with LoadStack(loadtest_config(out / "run", artefacts), artefacts, out_console) as stack:
        yield stack.http


def _artefacts(path: Path | None) -> Path:
    from vidrec_dev.loadtest.stack import default_artefacts

    art = path or default_artefacts()
    if not (art / "manifest.json").is_file():
        raise typer.BadParameter(f"{art} has no manifest.json: run `make demo` or pass --artefacts")
    return art


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the load-test commands to the ``vidrec`` and ``vidrec bench`` apps."""

    @bench_app.command("capacity")
    def capacity(
        out: Annotated[Path, typer.Option(help="Results, CSVs and plots.")] = Path(
            "runs/bench/capacity"
        ),
        host: Annotated[
            str, typer.Option(help="Load a running API here instead of starting a stack.")
        ] = "",
        steps: Annotated[
            str, typer.Option(help="Users per step, comma-separated.")
        ] = "1,2,3,4,6,8,12,16,24,32",
        step_s: Annotated[float, typer.Option("--step-s", help="Seconds per step.")] = 30.0,
        sla_p99_ms: P99Opt = DEFAULT_P99_MS,
        sla_fail_ratio: FailOpt = DEFAULT_FAIL_RATIO,
        sla_degraded_ratio: DegradedOpt = DEFAULT_DEGRADED_RATIO,
        think_ms: ThinkOpt = 100.0,
        patience: Annotated[
            int, typer.Option(help="Stop after this many steps in a row break the SLA.")
        ] = 2,
        artefacts: ArtefactsOpt = None,
        api_key: ApiKeyOpt = "",
    ) -> None:
        """Ramp Locust users until they break the SLA: the highest sustained req/s, and per core.

        After a 20 s warm-up (not judged), each step is a headless Locust run (HTTP mix: home
        70 %, related 15 %, trending 5 %, events 10 %) whose first 5 s are left out. A step
        breaks the SLA when its p99, its failure ratio or its share of degraded answers (200s
        served without a stage, e.g. unranked when Triton timed out) is over the limit.
        Writes OUT/capacity.json (each step's p99, failure ratio, degraded share and why it
        broke) and capacity.png.
        """
        from vidrec_dev.loadtest import capacity as cap
        from vidrec_dev.loadtest.workload import from_artefacts

        out = out.resolve()
        sla = Sla(sla_p99_ms, sla_fail_ratio, sla_degraded_ratio)
        users = [int(s) for s in steps.split(",") if s.strip()]
        art = _artefacts(artefacts)
        wl = from_artefacts(art).save(out / "workload.json")
        with _target(host, out, art) as url:
            result = cap.ramp(
                url,
                out,
                sla,
                users,
                step_s,
                think_ms=think_ms,
                users_file=wl,
                api_key=api_key,
                console=out_console,
                patience=patience,
            )
        cap.report(result, out_console)

    @bench_app.command("soak")
    def soak(
        out: Annotated[Path, typer.Option(help="Results, CSVs and plots.")] = Path(
            "runs/bench/soak"
        ),
        minutes: Annotated[float, typer.Option(help="Length of the run.")] = 10.0,
        users: Annotated[int, typer.Option(help="Locust users (steady).")] = 8,
        sla_p99_ms: P99Opt = DEFAULT_P99_MS,
        sla_fail_ratio: FailOpt = DEFAULT_FAIL_RATIO,
        sla_degraded_ratio: DegradedOpt = DEFAULT_DEGRADED_RATIO,
        think_ms: ThinkOpt = 500.0,
        artefacts: ArtefactsOpt = None,
    ) -> None:
        """A steady run (10 min by default): each service's RSS start → end and latency drift
        (first vs last minute), events lost. Writes OUT/soak.json and soak.png."""
        from vidrec_dev.loadtest import soak as sk
        from vidrec_dev.loadtest.stack import LoadStack, loadtest_config
        from vidrec_dev.loadtest.workload import from_artefacts

        out = out.resolve()
        art = _artefacts(artefacts)
        wl = from_artefacts(art).save(out / "workload.json")
        out_console.print("[bold cyan]▶[/] starting the load-test stack …")
        with LoadStack(loadtest_config(out / "run", art), art, out_console) as stack:
            result = sk.soak(
                stack,
                out,
                minutes * 60,
                users,
                think_ms,
                Sla(sla_p99_ms, sla_fail_ratio, sla_degraded_ratio),
                wl,
                console=out_console,
            )
        sk.report(result, out_console)
        if result.events.lost:
            raise typer.Exit(1)

    @app.command("chaos")
    def chaos(
        out: Annotated[Path, typer.Option(help="Results and plots.")] = Path("runs/chaos"),
        scenarios: Annotated[
            str,
            typer.Option(
                help="Comma-separated: prometheus,triton,processor,overload,redis-master."
            ),
        ] = "prometheus,triton,processor,overload,redis-master",
        users: Annotated[int, typer.Option(help="Locust users of the steady load.")] = 8,
        capacity_json: Annotated[
            Path,
            typer.Option(
                help="`vidrec bench capacity` result: the overload adds 2 × its users (its think"
                " time) on top of the steady load."
            ),
        ] = Path("runs/bench/capacity/capacity.json"),
        overload_users: Annotated[
            int, typer.Option(help="Users added by the overload (default: from --capacity-json).")
        ] = 0,
        duration: Annotated[float, typer.Option(help="Seconds of load per scenario.")] = 60.0,
        fault_at: Annotated[float, typer.Option(help="Second of the run the fault starts.")] = 15.0,
        undo_at: Annotated[float, typer.Option(help="Second of the run it is undone.")] = 35.0,
        think_ms: ThinkOpt = 500.0,
        artefacts: ArtefactsOpt = None,
    ) -> None:
        """Faults under Locust load: kill a Redis master and bring it back, kill Triton, stall
        Prometheus, kill the event processor, overload at 2 × capacity. Per scenario: error
        and 5xx rate (against a budget), degraded-answer rate, p99, recovery time, and events
        lost (accepted vs processed vs lake: must be 0). Exits 1 when any is over its budget
        or lost an event."""
        from vidrec_dev.loadtest import chaos as ch
        from vidrec_dev.loadtest.stack import LoadStack, loadtest_config
        from vidrec_dev.loadtest.workload import from_artefacts

        out = out.resolve()
        art = _artefacts(artefacts)
        names = [s.strip() for s in scenarios.split(",") if s.strip()]
        overload_think_ms = 100.0
        if not overload_users:
            cap_users = 0
            if capacity_json.is_file():
                found = json.loads(capacity_json.read_text())
                cap_users = int(found.get("capacity_users") or 0)
                overload_think_ms = float(found.get("think_ms") or overload_think_ms)
            overload_users = 2 * cap_users if cap_users else 2 * users
        wl = from_artefacts(art).save(out / "workload.json")
        out_console.print("[bold cyan]▶[/] starting the chaos stack …")
        with LoadStack(loadtest_config(out / "run", art), art, out_console) as stack:
            outcomes = ch.run_chaos(
                stack,
                out,
                names,
                users=users,
                overload_users=overload_users,
                overload_think_ms=overload_think_ms,
                timing=ch.Timing(duration, fault_at, undo_at),
                think_ms=think_ms,
                users_file=wl,
                console=out_console,
            )
        ch.report(outcomes, out_console)
        if any(o.events_lost or not o.within_budget for o in outcomes):
            raise typer.Exit(1)
