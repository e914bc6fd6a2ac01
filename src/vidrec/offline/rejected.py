"""What a refused run leaves behind: ``OUT.rejected`` with its manifest, metrics and report.

A gate that refuses with one sentence leaves a person guessing; the full metrics table, the
gate's checks and the plots are kept next to where the output would have gone, while
nothing is exported (no models, no index, no events copy) and an existing ``OUT`` stays.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from vidrec.contracts.manifest import Manifest
from vidrec.errors import GateFailed
from vidrec.offline.report import (
    metrics_text,
    plot_ranking_vs_popularity,
    plot_retrieval_vs_baselines,
    print_metrics,
)
from vidrec.offline.staging import staged_dir

REJECTED_SUFFIX = ".rejected"


def rejected_dir(out: Path) -> Path:
    return out.parent / f"{out.name}{REJECTED_SUFFIX}"


def keep_rejected(
    stage: Path, out: Path, exc: GateFailed, profile: str, seed: int, console: Console
) -> Path:
    """Move the stage's report to ``OUT.rejected``, add a manifest and the metrics table.

    The table is also printed to ``console`` (the refusal explains itself even with -q).
    """
    now = datetime.now(UTC)
    manifest = Manifest(
        model_version=f"rejected-{now.strftime('%Y%m%d-%H%M%S')}-s{seed}",
        created_at=now.isoformat(timespec="seconds"),
        profile=profile,
        seed=seed,
        feature_specs={},
        data_window={},
        metrics=dict(exc.metrics),
        artefacts={"report": "report"},
        evaluation=dict(exc.evaluation),
    )
    target = rejected_dir(out.resolve())
    with staged_dir(target) as kept:
        report = kept / "report"
        if (stage / "report").is_dir():
            shutil.move(stage / "report", report)
        report.mkdir(exist_ok=True)
        plot_retrieval_vs_baselines(manifest.metrics, report / "retrieval_vs_baselines.png")
        plot_ranking_vs_popularity(manifest.metrics, report / "ranking_vs_popularity.png")
        (report / "metrics.txt").write_text(metrics_text(manifest))
        manifest.write(kept / "manifest.json")
    print_metrics(manifest, console)
    return target
