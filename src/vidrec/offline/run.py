"""The offline pipeline as one command: events → features → train → gate → build → report.

``train`` and ``build`` are separate steps (``vidrec train``, ``vidrec build``) and
``run_pipeline`` chains them in one staged directory, so a run that fails anywhere — bad
input, a failed quality gate, a bug — leaves no output directory that looks complete.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import polars as pl
from rich.console import Console

from vidrec.config import Config, load_config
from vidrec.contracts.manifest import Manifest, read_manifest
from vidrec.data import (
    Catalog,
    SimConfig,
    compare_watch_ratio,
    load_catalog,
    plot_watch_ratio,
    schedule_uploads,
    simulate,
)
from vidrec.data.dataset import SPLIT, Dataset, load_dataset
from vidrec.errors import GateFailed, InputError
from vidrec.events.event_log import EventLog, configured_crypto, read_event_log, write_events
from vidrec.features import (
    CONTEXT_SPEC,
    VIDEO_SPEC,
    build_training_tables,
    ranker_input_spec,
    user_spec,
    user_tower_spec,
)
from vidrec.models import (
    metrics_from_manifest,
    parse_split,
    quality_gate,
    save_models,
    train_and_evaluate,
    undefined_from_manifest,
)
from vidrec.models.frames import float_matrix, int_matrix
from vidrec.models.mmoe import RANKER_TABLE, ranker_data
from vidrec.models.params import RankerParams, TwoTowerParams
from vidrec.models.two_tower import RETRIEVAL_TABLE
from vidrec.offline import privacy
from vidrec.offline.build import EvalSample, build_artefacts
from vidrec.offline.catalog import videos_as_of_log
from vidrec.offline.privacy import PrivacyView, load_tombstones
from vidrec.offline.profiles import Profile, get_profile
from vidrec.offline.rejected import keep_rejected, rejected_dir
from vidrec.offline.report import (
    metrics_text,
    plot_ranking_vs_popularity,
    plot_retrieval_vs_baselines,
    plot_training_curves,
    print_metrics,
)
from vidrec.offline.serving_prep import rule_tables_for
from vidrec.offline.staging import staged_dir
from vidrec.security.pseudonym import Pseudonymizer

T = TypeVar("T")
DAY_MS = 86_400_000
DATASET_VIDEOS = "data/videos.parquet"  # a --dataset run's catalogue, read by serving prep
DATASET_USERS = "data/users.parquet"
EVAL_ROWS = 20_000  # held-out rows kept for build-time checks (INT8 AUC, index recall)


@dataclass
class Steps:
    """Named, timed steps with a one-line status each (the progress bars come from inside)."""

    console: Console
    timings: dict[str, float]

    def run(self, name: str, fn: Callable[[], T]) -> T:
        self.console.print(f"[bold cyan]▶[/] {name}")
        start = time.perf_counter()
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 2)
        self.console.print(f"  [green]✓[/] {name} ({self.timings[name]:.1f}s)")
        return result


def sim_config(profile: Profile, seed: int) -> SimConfig:
    return SimConfig(
        seed=seed,
        n_users=profile.n_users,
        days=profile.days,
        sessions_per_user_per_day=profile.sessions_per_user_per_day,
        slate_size=profile.slate_size,
    )


def _load_catalog(cfg: Config, seed: int) -> Catalog:
    return load_catalog(cfg.data.kuairec_dir, seed=seed)


def simulate_events(profile: str, out: Path, seed: int = 7, progress: bool = True) -> int:
    """`vidrec simulate`: write a simulated event log; return its length."""
    cfg = load_config()
    events = simulate(_load_catalog(cfg, seed), sim_config(get_profile(profile), seed), progress)
    write_events(events, out)
    return events.height


def _events_and_videos(
    catalog: Catalog, profile: Profile, events: Path | None, seed: int, progress: bool
) -> tuple[EventLog, pl.DataFrame]:
    if events is None:
        sim = sim_config(profile, seed)
        log = EventLog(simulate(catalog, sim, progress), user_ids="", encrypted=False)
        return log, schedule_uploads(catalog, sim).videos
    log = read_event_log(events)
    return log, videos_as_of_log(catalog.videos, log.events, str(events))


def privacy_view(
    log: EventLog, users: pl.DataFrame, cfg: Config, events: Path | None
) -> PrivacyView:
    """The log and users table in one id space, without forgotten users (offline/privacy.py):
    tombstones from the log's own lake and from the configured lake."""
    tombstones = load_tombstones(events, cfg.events.lake_dir)
    return privacy.view(
        log.events, users, log.user_ids, Pseudonymizer(cfg.events.id_salt), tombstones
    )


def _data_window(events: pl.DataFrame, ranker: pl.DataFrame) -> dict[str, object]:
    days = sorted(ranker["day"].unique().to_list())
    return {
        "start_ms": int(events["ts"].min()),  # type: ignore[arg-type]
        "end_ms": int(events["ts"].max()),  # type: ignore[arg-type]
        "n_events": events.height,
        "n_impressions": ranker.height,
        "train_days": len(days) - 2,
        "valid_day": days[-2],
        "test_day": days[-1],
    }


def _eval_sample(ranker: pl.DataFrame, retrieval: pl.DataFrame, seed: int) -> EvalSample:
    test_r = ranker.filter(pl.col("day") == pl.col("day").max())
    test_q = retrieval.filter(pl.col("day") == pl.col("day").max())
    test_r = test_r.sample(min(EVAL_ROWS, test_r.height), seed=seed)
    test_q = test_q.unique("user_id", keep="first", maintain_order=True).head(2000)
    data = ranker_data(test_r, RANKER_TABLE)
    return EvalSample(
        ranker_x=data.x,
        ranker_labels=data.labels,
        user_x=float_matrix(test_q, "user_x", RETRIEVAL_TABLE),
        history=int_matrix(test_q, "history", RETRIEVAL_TABLE),
    )


def _feature_specs(static_dim: int) -> dict[str, dict[str, object]]:
    specs = {
        "user": user_spec(static_dim),
        "video": VIDEO_SPEC,
        "context": CONTEXT_SPEC,
        "ranker_input": ranker_input_spec(static_dim),
        "user_tower_input": user_tower_spec(static_dim),
    }
    return {
        k: {"name": s.name, "version": s.version, "dim": s.dim, "hash": s.hash.hex()}
        for k, s in specs.items()
    }


def _dataset_inputs(
    stage: Path, dataset: Path, cfg: Config, steps: Steps
) -> tuple[EventLog, pl.DataFrame, pl.DataFrame, dict[str, object], pl.DataFrame | None]:
    """A `--dataset` directory (docs/datasets.md): its log, catalogue and users, which the
    artefact keeps (``data/``) so serving prep reads the same catalogue, not KuaiRec's, and
    its own split (``event_id, split``) when it ships one."""
    ds: Dataset = steps.run(f"read dataset {dataset}", lambda: load_dataset(dataset, cfg.data))
    for reason, n in ds.report.skipped.items():
        steps.console.print(f"  [yellow]skipped[/] {n:,} interactions: {reason}")
    for note in ds.report.notes:
        steps.console.print(f"  [dim]{note}[/]")
    ds.videos.write_parquet(stage / DATASET_VIDEOS)
    ds.users.write_parquet(stage / DATASET_USERS)
    window: dict[str, object] = {"dataset": str(dataset), "report": ds.report.as_dict()}
    splits = ds.interactions.select("event_id", SPLIT) if SPLIT in ds.interactions.columns else None
    return EventLog(ds.events, user_ids="", encrypted=False), ds.videos, ds.users, window, splits


def train_step(
    stage: Path,
    profile: Profile,
    cfg: Config,
    steps: Steps,
    events: Path | None,
    baseline: Path | None,
    seed: int,
    progress: bool,
    dataset: Path | None = None,
) -> Manifest:
    """Everything up to and including the quality gate; writes ``stage/models`` and report."""
    parse_split(cfg.train.eval_split)  # a bad --split fails before minutes of work
    baseline_metrics = metrics_from_manifest(baseline) if baseline else None
    baseline_undefined = undefined_from_manifest(baseline) if baseline else {}
    report = stage / "report"
    report.mkdir()
    (stage / "data").mkdir()
    real: pl.DataFrame | None = None  # KuaiRec's real interactions, to compare the simulator
    extra_window: dict[str, object] = {}
    splits: pl.DataFrame | None = None  # the dataset's own split, when it ships one
    if dataset is not None:
        if events is not None:
            raise InputError("--dataset and --events: give one source of interactions")
        source, videos, all_users, extra_window, splits = _dataset_inputs(
            stage, dataset, cfg, steps
        )
    else:
        catalog = steps.run("load KuaiRec", lambda: _load_catalog(cfg, seed))
        source, videos = steps.run(
            "simulate events" if events is None else f"read events {events}",
            lambda: _events_and_videos(catalog, profile, events, seed, progress),
        )
        real, all_users = catalog.interactions, catalog.users
    private = privacy_view(source, all_users, cfg, events)
    log, users = private.events, private.users
    # Serving state is built from this copy: same id space, encrypted if the source was.
    crypto = configured_crypto() if source.encrypted else None
    write_events(private.source_events, stage / "data" / "events.parquet", crypto=crypto,
                 user_ids=source.user_ids)  # fmt: skip
    comparison = None if real is None else compare_watch_ratio(log, real)
    if comparison is not None and real is not None:
        plot_watch_ratio(comparison, log, real, report / "sim_vs_real_watch_ratio.png")
    tables = steps.run(
        "point-in-time features",
        lambda: build_training_tables(log, videos, users, cfg.features, progress, splits),
    )
    trained = steps.run(
        "train two-tower + MMoE, evaluate vs baselines",
        lambda: train_and_evaluate(
            tables.ranker,
            tables.retrieval,
            videos,
            cfg,
            progress,
            TwoTowerParams(epochs=profile.two_tower_epochs),
            RankerParams(epochs=profile.ranker_epochs, batch_size=profile.batch_size),
        ),
    )
    metrics = dict(trained.metrics)
    if comparison is not None:
        metrics["data.watch_ratio_ks"] = comparison.ks_statistic
    undefined = trained.undefined | baseline_undefined
    gate = quality_gate(metrics, baseline_metrics, cfg.train.gate_margin, undefined)
    evaluation = trained.evaluation | {
        "undefined": trained.undefined,
        "gate": {"passed": gate.passed, "checks": gate.checks, "reasons": gate.reasons},
    }
    if not gate.passed:
        raise GateFailed(gate.reasons, metrics, evaluation)

    models_dir = stage / "models"
    save_models(models_dir, trained.two_tower, trained.ranker)
    _eval_sample(tables.ranker, tables.retrieval, seed).save(models_dir)
    plot_training_curves(
        {
            "two-tower (sampled softmax)": {"train": trained.two_tower.losses},
            "MMoE ranker (mean BCE over heads)": {
                "train": trained.ranker.train_loss,
                "valid": trained.ranker.valid_loss,
            },
        },
        report / "training_curves.png",
    )
    plot_retrieval_vs_baselines(metrics, report / "retrieval_vs_baselines.png")
    plot_ranking_vs_popularity(metrics, report / "ranking_vs_popularity.png")
    static_dim = int(all_users.schema["static"].size)  # type: ignore[attr-defined]
    return Manifest(
        model_version=datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + f"-s{seed}",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        profile=profile.name,
        seed=seed,
        feature_specs=_feature_specs(static_dim),
        data_window=_data_window(log, tables.ranker)
        | {"user_ids": source.user_ids or "raw", "forgotten_users": private.forgotten_users}
        | extra_window,
        metrics={k: float(v) for k, v in metrics.items()},
        evaluation=evaluation,
        artefacts={"models": "models", "report": "report", "events": "data/events.parquet"}
        | ({"videos": DATASET_VIDEOS, "users": DATASET_USERS} if dataset is not None else {}),
    )


def evaluation_config(split: str | None, unfiltered: bool, cfg: Config | None = None) -> Config:
    """``cfg`` (default: the environment's) with ``--split`` / ``--unfiltered`` applied."""
    cfg = cfg or load_config()
    train = cfg.train
    if split is not None:
        train = replace(train, eval_split=str(parse_split(split)))
    if unfiltered:
        train = replace(train, eval_filter_seen=False)
    return replace(cfg, train=train)


def _steps(progress: bool) -> Steps:
    return Steps(Console(stderr=True, quiet=not progress), {})


def _run(
    profile: str,
    out: Path,
    events: Path | None,
    baseline: Path | None,
    seed: int,
    progress: bool,
    cfg: Config | None,
    with_build: bool,
    dataset: Path | None = None,
) -> Manifest:
    """Train (and optionally build) in one staged directory, then print the metrics table."""
    cfg = cfg or load_config()
    prof = get_profile(profile)
    start = time.perf_counter()
    steps = _steps(progress)
    with staged_dir(out) as stage:
        try:
            manifest = train_step(
                stage, prof, cfg, steps, events, baseline, seed, progress, dataset=dataset
            )
        except GateFailed as exc:  # nothing exported; the evidence is kept and printed
            exc.kept = keep_rejected(stage, out, exc, prof.name, seed, Console(stderr=True))
            raise
        if with_build:
            extra = steps.run("build artefacts", lambda: build_artefacts(stage, cfg, progress))
            manifest = _with_artefacts(manifest, extra)
            _rule_tables(steps, stage, cfg, manifest)
        steps.timings["total"] = round(time.perf_counter() - start, 2)
        manifest = replace(manifest, timings_s=manifest.timings_s | steps.timings)
        manifest.write(stage / "manifest.json")
        (stage / "report" / "metrics.txt").write_text(metrics_text(manifest))
    shutil.rmtree(rejected_dir(out.resolve()), ignore_errors=True)  # superseded
    print_metrics(manifest, steps.console)
    steps.console.print(f"[bold green]done[/] in {steps.timings['total']:.0f}s → {out}")
    steps.console.print(f"plots: {out / 'report'}")
    return manifest


def train(
    profile: str,
    out: Path,
    events: Path | None = None,
    baseline: Path | None = None,
    seed: int = 7,
    progress: bool = True,
    cfg: Config | None = None,
    dataset: Path | None = None,
) -> Manifest:
    """`vidrec train`: models + metrics + report in ``out``, only if the gate passes."""
    return _run(profile, out, events, baseline, seed, progress, cfg, False, dataset)


def run_pipeline(
    profile: str,
    out: Path,
    events: Path | None = None,
    baseline: Path | None = None,
    seed: int = 7,
    progress: bool = True,
    cfg: Config | None = None,
    dataset: Path | None = None,
) -> Manifest:
    """`vidrec pipeline run`: train + build in one staged directory (``dataset``: a contract
    directory, docs/datasets.md, instead of KuaiRec + the simulator)."""
    return _run(profile, out, events, baseline, seed, progress, cfg, True, dataset)


ARTEFACTS = {
    "index": "index",
    "neighbours": "index",  # item-item lists: NeighbourLists files next to the index
    "user_tower": "models/user_tower.onnx",
    "ranker": "models/ranker.onnx",
    "ranker_int8": "models/ranker.int8.onnx",
    "model_repository": "model_repository",
}


def _rule_tables(steps: Steps, root: Path, cfg: Config, manifest: Manifest) -> None:
    """Serving's rule tables (``serving/``): serving reads them and never builds them."""
    steps.run(
        "serving rule tables",
        lambda: rule_tables_for(root, cfg.data.kuairec_dir, manifest),
    )


def _with_artefacts(manifest: Manifest, checks: dict[str, float]) -> Manifest:
    """The manifest once `build` has added its artefacts and their check metrics."""
    return replace(
        manifest, metrics=manifest.metrics | checks, artefacts=manifest.artefacts | ARTEFACTS
    )


def build(root: Path, progress: bool = True, cfg: Config | None = None) -> Manifest:
    """`vidrec build`: add serving artefacts to a trained directory and update its manifest."""
    cfg = cfg or load_config()
    manifest = read_manifest(root / "manifest.json")
    steps = _steps(progress)
    extra = steps.run("build artefacts", lambda: build_artefacts(root, cfg, progress))
    manifest = _with_artefacts(manifest, extra)
    _rule_tables(steps, root, cfg, manifest)
    manifest = replace(manifest, timings_s=manifest.timings_s | steps.timings)
    tmp = root / "manifest.json.tmp"
    manifest.write(tmp)
    tmp.replace(root / "manifest.json")
    return manifest
