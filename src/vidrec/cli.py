"""`vidrec` command line: a thin adapter over the library.

Heavy imports (torch, faiss, polars) happen inside the commands so `vidrec --help` is instant.
Input problems (``InputError``) print one red line naming the file/field and exit with code 2;
a failed quality gate exits with code 3; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidrec.cli_support import err, friendly
from vidrec.rollout.cli import rollout_app
from vidrec.security.cli import users_app

if TYPE_CHECKING:
    from vidrec.config import Config

app = typer.Typer(
    help="vidrec — personalised video recommendations: build models, serve them, roll them out.",
    no_args_is_help=True,
    add_completion=False,
)
pipeline_app = typer.Typer(help="The offline pipeline, end to end.", no_args_is_help=True)
features_app = typer.Typer(help="Feature tables and the online store.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect trained model artefacts.", no_args_is_help=True)
triton_app = typer.Typer(help="Triton Inference Server helpers.", no_args_is_help=True)
events_app = typer.Typer(help="The engagement-event path (Redis Streams).", no_args_is_help=True)
serve_app = typer.Typer(help="Serving state for the online path.", no_args_is_help=True)
gpu_app = typer.Typer(
    help="GPU checks: the TensorRT path, run on a GPU node (never executed without one).",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(features_app, name="features")
app.add_typer(models_app, name="models")
app.add_typer(triton_app, name="triton")
app.add_typer(serve_app, name="serve")
app.add_typer(gpu_app, name="gpu")
app.add_typer(events_app, name="events")
app.add_typer(rollout_app, name="rollout")
app.add_typer(users_app, name="users")


ProfileOpt = Annotated[
    str, typer.Option("--profile", help="Size preset: test (seconds), demo (≈10 min), full.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory (created atomically).")]
EventsOpt = Annotated[
    Path | None,
    typer.Option(
        "--events",
        help="Train from this event log (a Parquet file or a directory of them, e.g. the lake)"
        " instead of simulating one.",
    ),
]
DatasetOpt = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="Train on your own data: a directory with interactions, items and (optional) users"
        " files, Parquet or CSV (docs/datasets.md), instead of KuaiRec and the simulator.",
    ),
]
BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="manifest.json of the model in production: the new model must beat it, not just"
        " the popularity baseline.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="Held-out test rows: last-day, per-user:0.2 (each user's last 20%), global:0.85"
        " (after the 85th time percentile), dataset (its 'split' column) or auto (the default:"
        " dataset when the data has a split column, else last-day). VIDREC_TRAIN__EVAL_SPLIT.",
    ),
]
UnfilteredOpt = Annotated[
    bool,
    typer.Option(
        "--unfiltered",
        help="Rank items from the user's training history too (by default they are excluded"
        " from the ranked lists and the relevant sets). VIDREC_TRAIN__EVAL_FILTER_SEEN=false.",
    ),
]


def _eval_config(split: str | None, unfiltered: bool) -> Config:
    """The configuration with --split / --unfiltered applied (validated before any work)."""
    from vidrec.offline.run import evaluation_config

    return evaluation_config(split, unfiltered)


@pipeline_app.command("run")
@friendly
def pipeline_run(
    out: OutOpt,
    profile: ProfileOpt = "demo",
    events: EventsOpt = None,
    dataset: DatasetOpt = None,
    baseline: BaselineOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for the simulator and training.")] = 7,
    split: SplitOpt = None,
    unfiltered: UnfilteredOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Simulate (or read) events → features → train → evaluate → gate → export artefacts.

    Writes OUT/manifest.json, OUT/models, OUT/index, OUT/model_repository and plots in
    OUT/report. OUT appears only when everything succeeded; a run the quality gate refuses
    exits 3 and keeps its metrics, gate checks and report in OUT.rejected.
    """
    from vidrec.offline.run import run_pipeline

    run_pipeline(
        profile=profile, out=out, events=events, baseline=baseline, seed=seed,
        progress=not quiet, dataset=dataset, cfg=_eval_config(split, unfiltered),
    )  # fmt: skip


@app.command("train")
@friendly
def train_cmd(
    out: OutOpt,
    profile: ProfileOpt = "demo",
    events: EventsOpt = None,
    dataset: DatasetOpt = None,
    baseline: BaselineOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for the simulator and training.")] = 7,
    split: SplitOpt = None,
    unfiltered: UnfilteredOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train and evaluate; export models to OUT only if they pass the quality gate.

    Exits 3 (and exports nothing) when the two-tower model does not beat popularity
    recall@100, or the ranker popularity NDCG@10 on its slates, by the configured margin
    (VIDREC_TRAIN__GATE_MARGIN) — or, with --baseline, the metrics of the model in that
    manifest. A metric the test data leaves undefined is not judged. The refused run's metrics,
    gate checks and report are kept in OUT.rejected.
    """
    from vidrec.offline.run import train

    train(
        profile=profile, out=out, events=events, baseline=baseline, seed=seed,
        progress=not quiet, dataset=dataset, cfg=_eval_config(split, unfiltered),
    )  # fmt: skip


@app.command("build")
@friendly
def build_cmd(
    artefacts: Annotated[Path, typer.Argument(help="A directory written by `vidrec train`.")],
    quiet: QuietOpt = False,
) -> None:
    """Export serving artefacts: FAISS index, ONNX (FP32 + INT8), Triton model_repository.

    Each artefact is checked against its source (ONNX vs torch within 1e-4, index recall@500
    vs exact search, INT8 AUC change) and the checks are added to manifest.json.
    """
    from vidrec.offline.report import print_metrics
    from vidrec.offline.run import build

    print_metrics(build(artefacts, progress=not quiet))


@app.command("simulate")
@friendly
def simulate_cmd(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the events to.")],
    profile: ProfileOpt = "demo",
    seed: Annotated[int, typer.Option(help="Simulator seed: same seed, same log.")] = 7,
    quiet: QuietOpt = False,
) -> None:
    """Simulate an engagement log over the real KuaiRec catalogue and users."""
    from vidrec.offline.run import simulate_events

    n = simulate_events(profile=profile, out=out, seed=seed, progress=not quiet)
    err.print(f"wrote {n:,} events to {out}")


@features_app.command("materialize")
@friendly
def features_materialize(
    events: Annotated[Path, typer.Option("--events", help="Event log (Parquet file or dir).")],
    entity: Annotated[str, typer.Option(help="users or videos.")] = "videos",
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL (default: config VIDREC_REDIS__URL).")
    ] = None,
    cluster: Annotated[
        bool | None, typer.Option("--cluster/--standalone", help="Redis Cluster or standalone.")
    ] = None,
    at: Annotated[
        int | None, typer.Option(help="Feature time, epoch ms (default: after the last event).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Compute the latest feature vectors from an event log and load them into Redis."""
    from vidrec.offline.materialize import materialize_from_events

    n = materialize_from_events(
        events=events,
        entity=entity,
        redis_url=redis_url,
        cluster=cluster,
        at_ms=at,
        progress=not quiet,
    )
    err.print(f"materialised {n:,} {entity} vectors")


@models_app.command("show")
@friendly
def models_show(
    artefacts: Annotated[Path, typer.Argument(help="An artefact directory (has manifest.json).")],
) -> None:
    """Print a model artefact's version, data window and metrics against the baselines."""
    from vidrec.contracts.manifest import read_manifest
    from vidrec.offline.report import print_metrics

    print_metrics(read_manifest(artefacts / "manifest.json"))


@triton_app.command("prepare")
@friendly
def triton_prepare(
    dest: Annotated[
        Path | None, typer.Option(help="Backend directory (default: .tools/triton/backends).")
    ] = None,
) -> None:
    """Assemble Triton's python backend with the stub for this interpreter (venv untouched)."""
    from vidrec.config import REPO_ROOT
    from vidrec.ranking.triton_process import prepare_backend_dir

    path = prepare_backend_dir(dest or REPO_ROOT / ".tools" / "triton" / "backends")
    err.print(f"triton backends ready in {path}")


@serve_app.command("prepare")
@friendly
def serve_prepare(
    artefacts: Annotated[Path, typer.Argument(help="An artefact directory (vidrec build).")],
    quiet: QuietOpt = False,
) -> None:
    """Load end-of-log user/video vectors and session state into Redis; write rule tables.

    Redis comes from VIDREC_REDIS__URL / VIDREC_REDIS__CLUSTER (the local stack sets them).
    """
    from vidrec.config import load_config
    from vidrec.offline.serving_prep import prepare_serving

    cfg = load_config()
    counts = prepare_serving(artefacts, cfg.redis, cfg.features.n_buckets, progress=not quiet)
    err.print(f"serving state loaded into {cfg.redis.url}: {counts}")


@serve_app.command("tables")
@friendly
def serve_tables(
    artefacts: Annotated[Path, typer.Argument(help="An artefact directory (vidrec build).")],
) -> None:
    """Write the serving rule tables (catalogue, trending, log clock) into ARTEFACTS/serving.

    `vidrec pipeline run` and `vidrec build` already do; run this for a directory built before
    they did (serving reports it missing). Reads the artefact's own event log and KuaiRec.
    """
    from vidrec.config import load_config
    from vidrec.offline.serving_prep import rule_tables_for

    out = rule_tables_for(artefacts, load_config().data.kuairec_dir)
    err.print(f"serving rule tables written to {out}")


EXIT_NO_GPU = 4


@gpu_app.command("check")
@friendly
def gpu_check(
    artefacts: Annotated[
        Path, typer.Option(help="Artefact directory with the ranker ONNX (vidrec build).")
    ] = Path("artifacts/demo"),
    out: Annotated[
        Path,
        typer.Option(help="Report JSON; the plan and its key are kept beside it."),
    ] = Path("runs/gpu-check/report.json"),
    rows: Annotated[int, typer.Option(min=1, help="Rows scored by both TensorRT and ORT.")] = 1000,
) -> None:
    """Build the TensorRT plan of the artefacts' ranker on this GPU and check it.

    Builds with the chart's build_plan.sh, serves it as ranker_trt on tritonserver (when it
    has the TensorRT backend; else the tensorrt Python API), compares its scores with ONNX
    Runtime (FP16: max |diff| <= 1e-2 on probabilities; FP32: 1e-4) and measures throughput
    with and without dynamic batching. Exits 4 naming what is missing on a machine without a
    GPU, trtexec or a TensorRT runtime; 3 when the scores disagree.
    """
    from vidrec.ranking.gpu_check import GpuUnavailable, report_table, run_gpu_check

    try:
        report = run_gpu_check(artefacts, out, rows=rows)
    except GpuUnavailable as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_NO_GPU) from exc
    typer.echo(report_table(report))
    err.print(f"report written to {out}")
    if not report.passed:
        raise typer.Exit(3)


MetricsPortOpt = Annotated[int | None, typer.Option(help="Prometheus /metrics port.")]


@events_app.command("process")
def events_process(metrics_port: MetricsPortOpt = None) -> None:
    """Real-time features from the event streams: sessions, not-interested, counters, trending.

    A consumer group; at-least-once with idempotent application by event_id, so a restart
    (or a second copy) neither loses nor double-applies an event. Stops cleanly on SIGTERM.
    """
    from vidrec.config import load_config
    from vidrec.events.__main__ import main

    port = metrics_port or load_config().events.processor_metrics_port
    raise typer.Exit(main(["process", "--metrics-port", str(port)]))


@events_app.command("lake")
def events_lake(
    out: Annotated[
        Path | None, typer.Option(help="Lake directory (default: events.lake_dir).")
    ] = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Write every accepted event to Parquet, partitioned by event hour, exactly once.

    `vidrec pipeline run --events DIR` trains from the lake directly.
    """
    from vidrec.config import load_config
    from vidrec.events.__main__ import main

    e = load_config().events
    port = metrics_port or e.lake_metrics_port
    raise typer.Exit(main(["lake", "--out", str(out or e.lake_dir), "--metrics-port", str(port)]))


@events_app.command("dead-letters")
def events_dead_letters(
    group: Annotated[
        list[str] | None, typer.Option(help="Consumer group (repeatable; default: all).")
    ] = None,
    count: Annotated[int, typer.Option(help="The oldest N dead letters per group.")] = 100,
    replay: Annotated[
        bool, typer.Option("--replay", help="Append them back onto their source streams.")
    ] = False,
) -> None:
    """List the entries consumers could not apply (one JSON line each), or replay them.

    Replay after fixing the cause: each is appended to its source stream as a new entry,
    which every group reads again (re-applying an event is a no-op), and leaves the list.
    """
    from vidrec.events.__main__ import main

    args = ["dead-letters", "--count", str(count), *(["--replay"] if replay else [])]
    for g in group or []:
        args += ["--group", g]
    raise typer.Exit(main(args))


def _add_development_commands() -> None:
    """`vidrec stack|bench|chaos` come from the development tooling (``vidrec_dev``), found
    through the ``vidrec.cli`` entry points so that no runtime module imports it; the runtime
    images do not ship it, and there the commands are simply absent."""
    for entry in entry_points(group="vidrec.cli"):
        try:
            register = entry.load()
        except ImportError:
            continue
        register(app)


_add_development_commands()

if __name__ == "__main__":  # pragma: no cover
    app()
