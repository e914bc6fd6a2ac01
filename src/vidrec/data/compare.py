"""How close simulated watch ratios are to KuaiRec's real ones (numbers and a plot).

The simulator's watch model is hand-set; this is the check that keeps it honest. Ratios are
clipped to ``[0, MAX_RATIO]`` first: a few real views loop a video 100+ times and would
otherwise dominate the Wasserstein distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from scipy import stats

MAX_RATIO = 5.0
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class WatchRatioComparison:
    ks_statistic: float
    ks_pvalue: float
    wasserstein: float
    quantiles: tuple[float, ...]
    sim_quantiles: tuple[float, ...]
    real_quantiles: tuple[float, ...]
    n_sim: int
    n_real: int


def simulated_watch_ratios(events: pl.DataFrame) -> np.ndarray:
    """Watch ratio of every ``watch`` event with a known duration, clipped."""
    watches = events.filter((pl.col("type") == "watch") & (pl.col("video_duration_ms") > 0))
    if watches.is_empty():
        raise ValueError("simulated events: no 'watch' event with video_duration_ms > 0")
    ratio = watches["watch_ms"].to_numpy() / watches["video_duration_ms"].to_numpy()
    return np.clip(ratio, 0.0, MAX_RATIO)


def real_watch_ratios(interactions: pl.DataFrame) -> np.ndarray:
    """KuaiRec ``watch_ratio`` of the real interactions, clipped."""
    if "watch_ratio" not in interactions.columns or interactions.is_empty():
        raise ValueError("interactions: need a non-empty 'watch_ratio' column")
    return np.clip(interactions["watch_ratio"].drop_nulls().to_numpy(), 0.0, MAX_RATIO)


def compare_watch_ratio(
    sim_events: pl.DataFrame, interactions: pl.DataFrame
) -> WatchRatioComparison:
    """Two-sample KS and Wasserstein distance between simulated and real watch ratios."""
    sim, real = simulated_watch_ratios(sim_events), real_watch_ratios(interactions)
    ks = stats.ks_2samp(sim, real)
    return WatchRatioComparison(
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        wasserstein=float(stats.wasserstein_distance(sim, real)),
        quantiles=QUANTILES,
        sim_quantiles=tuple(float(q) for q in np.quantile(sim, QUANTILES)),
        real_quantiles=tuple(float(q) for q in np.quantile(real, QUANTILES)),
        n_sim=len(sim),
        n_real=len(real),
    )


def plot_watch_ratio(
    comparison: WatchRatioComparison,
    sim_events: pl.DataFrame,
    interactions: pl.DataFrame,
    path: Path,
) -> Path:
    """Write a PNG with both histograms and both CDFs; returns ``path``."""
    sim, real = simulated_watch_ratios(sim_events), real_watch_ratios(interactions)
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(0.0, MAX_RATIO, 51)
    hist.hist(real, bins=bins, density=True, alpha=0.6, label=f"KuaiRec (n={len(real):,})")
    hist.hist(sim, bins=bins, density=True, alpha=0.6, label=f"simulated (n={len(sim):,})")
    hist.set(xlabel=f"watch ratio (clipped to {MAX_RATIO:g})", ylabel="density")
    hist.legend()
    for values, label in ((real, "KuaiRec"), (sim, "simulated")):
        xs = np.sort(values)
        cdf.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=label)
    cdf.set(xlabel="watch ratio", ylabel="CDF")
    cdf.set_title(
        f"KS = {comparison.ks_statistic:.3f}, W1 = {comparison.wasserstein:.3f}", fontsize=10
    )
    cdf.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
