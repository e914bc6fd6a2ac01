"""What a person sees after a run: a metrics table against the baselines, and plots.

The second table is the evaluation the field reports (``eval.<model>.{recall,ndcg}@K``, see
:mod:`vidrec.models.evaluate`) under the run's split and protocol; a metric the test data
cannot support is shown as undefined and its reason is printed under the table.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.table import Table

from vidrec.contracts.manifest import Manifest
from vidrec.schema import RANKER_HEADS

RETRIEVAL_KS = (50, 100, 500)
EVAL_KS = (10, 20, 50, 100)
# (column title, model name in eval.<model>.*)
_EVAL_COLUMNS = (
    ("two-tower", "two_tower"),
    ("popularity", "popularity"),
    ("ALS", "als"),
    ("ranker (slates)", "ranker"),
    ("popularity (slates)", "slate_popularity"),
)

# (label, model key, baseline keys) — one row of the table each.
_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    *(
        (
            f"retrieval recall@{k}",
            f"retrieval.recall@{k}",
            (f"retrieval.popularity_recall@{k}", f"retrieval.mf_recall@{k}"),
        )
        for k in RETRIEVAL_KS
    ),
    *(
        (
            f"retrieval ndcg@{k}",
            f"retrieval.ndcg@{k}",
            (f"retrieval.popularity_ndcg@{k}", f"retrieval.mf_ndcg@{k}"),
        )
        for k in RETRIEVAL_KS
    ),
    ("ranking ndcg@10", "ranking.ndcg@10", ("ranking.popularity_ndcg@10",)),
    ("ranking watch ndcg@10", "ranking.watch_ndcg@10", ("ranking.popularity_watch_ndcg@10",)),
    ("ranking watch ms, top 3", "ranking.watch_time@3", ("ranking.popularity_watch_time@3",)),
    *((f"ranking auc {h}", f"ranking.auc.{h}", ()) for h in RANKER_HEADS),
    *((f"ranking logloss {h}", f"ranking.logloss.{h}", ()) for h in RANKER_HEADS),
    ("index recall@500 vs exact", "index.recall@500", ()),
    ("int8 auc change (p_click)", "ranking.int8_auc_delta.p_click", ()),
    ("int8 cpu speed-up", "ranking.int8_speedup", ()),
)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def metrics_table(metrics: Mapping[str, float]) -> Table:
    table = Table(title="offline metrics (held-out test split)", title_justify="left")
    for col in ("metric", "model", "popularity", "MF (ALS)", "model ÷ popularity"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for label, key, baselines in _ROWS:
        if key not in metrics:
            continue
        model = metrics[key]
        base = [metrics.get(b) for b in baselines] + [None] * (2 - len(baselines))
        ratio = f"{model / base[0]:.2f}×" if base[0] else "—"
        table.add_row(label, _fmt(model), _fmt(base[0]), _fmt(base[1]), ratio)
    return table


def eval_table(metrics: Mapping[str, float], evaluation: Mapping[str, Any]) -> Table:
    """recall/ndcg@K per model; ``undefined`` where the test data leaves the metric undefined."""
    undefined = evaluation.get("undefined", {})
    title = (
        f"top-K evaluation ({evaluation.get('protocol', '?')} protocol, "
        f"split {evaluation.get('split', '?')})"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("metric", justify="left")
    for label, _ in _EVAL_COLUMNS:
        table.add_column(label, justify="right")
    for metric in ("recall", "ndcg"):
        for k in EVAL_KS:
            cells = []
            for _, model in _EVAL_COLUMNS:
                key = f"eval.{model}.{metric}@{k}"
                cells.append(
                    f"{metrics[key]:.4f}" if key in metrics else "undefined" if key in undefined
                    else "—"
                )  # fmt: skip
            table.add_row(f"{metric}@{k}", *cells)
    return table


def undefined_lines(undefined: Mapping[str, str]) -> list[str]:
    """One line per reason, naming the keys it leaves undefined (reasons repeat across K)."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(undefined.items()):
        by_reason.setdefault(reason, []).append(key)
    return [f"undefined: {', '.join(keys)} — {reason}" for reason, keys in by_reason.items()]


def print_metrics(manifest: Manifest, console: Console | None = None) -> None:
    console = console or Console()
    console.width = max(console.width, 110)  # the table is unreadable when wrapped
    w = manifest.data_window
    ev = manifest.evaluation
    events = f"{w['n_events']:,} events · " if "n_events" in w else ""
    console.print(
        f"[bold]model {manifest.model_version}[/] · profile {manifest.profile} · {events}"
        f"split {ev.get('split', 'last-day')} · {ev.get('protocol', 'unfiltered')} protocol"
    )
    console.print(metrics_table(manifest.metrics))
    if ev:
        console.print(eval_table(manifest.metrics, ev))
        for line in undefined_lines(ev.get("undefined", {})):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        for check in ev.get("gate", {}).get("checks", []):
            console.print(f"gate: {check}", highlight=False, markup=False, soft_wrap=True)


def metrics_text(manifest: Manifest) -> str:
    """The printed tables as plain text, kept next to the plots (``report/metrics.txt``)."""
    buffer = io.StringIO()
    print_metrics(manifest, Console(file=buffer, width=130, color_system=None))
    return buffer.getvalue()


def plot_training_curves(panels: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """One panel per model (their losses have different scales), one line per curve."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items(), strict=True):
        for name, values in curves.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_retrieval_vs_baselines(metrics: Mapping[str, float], path: Path) -> Path:
    """Recall@K and NDCG@K of the two-tower model next to popularity and MF."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    systems = (("two-tower", ""), ("popularity", "popularity_"), ("MF (ALS)", "mf_"))
    width = 0.25
    for ax, metric in zip(axes, ("recall", "ndcg"), strict=True):
        for i, (label, prefix) in enumerate(systems):
            values = [metrics.get(f"retrieval.{prefix}{metric}@{k}", 0.0) for k in RETRIEVAL_KS]
            ax.bar([j + i * width for j in range(len(RETRIEVAL_KS))], values, width, label=label)
        ax.set_xticks([j + width for j in range(len(RETRIEVAL_KS))])
        ax.set_xticklabels([f"@{k}" for k in RETRIEVAL_KS])
        ax.set_title(f"retrieval {metric}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ranking_vs_popularity(metrics: Mapping[str, float], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, (title, key) in zip(
        axes,
        (("NDCG@10 (clicks)", "ndcg@10"), ("mean watch ms of the top 3", "watch_time@3")),
        strict=True,
    ):
        values = [metrics.get(f"ranking.{key}", 0.0), metrics.get(f"ranking.popularity_{key}", 0.0)]
        ax.bar(["MMoE ranker", "popularity"], values, color=["tab:blue", "tab:gray"])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
