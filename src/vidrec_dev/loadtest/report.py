"""PNG plots of load runs: latency over time, the capacity ramp, soak memory, chaos runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from vidrec_dev.loadtest.sla import Sla
from vidrec_dev.loadtest.timeline import Second, percentile


def _rel(timeline: Sequence[Second], origin: float | None) -> tuple[float, list[float]]:
    t0 = origin if origin is not None else (timeline[0].t if timeline else 0.0)
    return t0, [s.t - t0 for s in timeline]


def _save(fig: Any, path: Path) -> Path:
    """Every plot here ends the same way: laid out, written as a PNG, its memory freed."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_timeline(
    timeline: Sequence[Second],
    path: Path,
    sla: Sla | None = None,
    title: str = "",
    marks: Sequence[tuple[float, str]] = (),
    origin: float | None = None,
) -> Path:
    """p50/p99 per second (log scale), req/s, and the share of failed and degraded answers.

    ``marks`` are (epoch seconds, label) vertical lines: fault injected, fault undone.
    """
    t0, xs = _rel(timeline, origin)
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    p50 = [percentile(s.latencies_ms, 0.5) for s in timeline]
    p99 = [percentile(s.latencies_ms, 0.99) for s in timeline]
    ax.plot(xs, p50, lw=1.2, label="p50")
    ax.plot(xs, p99, lw=1.2, label="p99")
    if sla is not None:
        ax.axhline(sla.p99_ms, color="red", ls="--", lw=1, label=f"SLA p99 {sla.p99_ms:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("latency per second (ms)")
    ax.grid(alpha=0.3, which="both")
    rps = ax.twinx()
    rps.plot(xs, [s.requests for s in timeline], color="grey", lw=0.8, alpha=0.6)
    rps.set_ylabel("requests/s", color="grey")
    shares = (  # (numerator, denominator) per second, and how to draw it
        (lambda s: (s.failures, s.requests), "red", "-", "failed"),
        (lambda s: (s.server_errors, s.requests), "darkred", ":", "5xx / server errors"),
        (lambda s: (s.degraded, s.answers), "orange", "-", "degraded answers"),
    )
    for part, color, style, label in shares:
        ys = [n / d if d else math.nan for n, d in map(part, timeline)]
        ax2.plot(xs, ys, color=color, lw=1.2, ls=style, label=label)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("share per second")
    ax2.set_xlabel("seconds")
    ax2.grid(alpha=0.3)
    for at, label in marks:
        for a in (ax, ax2):
            a.axvline(at - t0, color="black", lw=0.8, ls="-.")
        ax.annotate(
            label,
            (at - t0, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_capacity(steps: Sequence[Mapping[str, float]], sla: Sla, path: Path, title: str) -> Path:
    """Sustained req/s and p99 against users, SLA line, the steps that met it marked."""
    users = [s["users"] for s in steps]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ok = [bool(s["passed"]) for s in steps]
    ax.plot(users, [s["rps"] for s in steps], "o-", color="tab:blue", label="req/s")
    for u, r, good in zip(users, [s["rps"] for s in steps], ok, strict=True):
        ax.plot(u, r, "o", color="green" if good else "red", ms=8)
    ax.set_xlabel("Locust users")
    ax.set_ylabel("sustained requests/s", color="tab:blue")
    ax.grid(alpha=0.3)
    lat = ax.twinx()
    lat.plot(users, [s["p99_ms"] for s in steps], "s--", color="tab:orange", label="p99")
    lat.axhline(sla.p99_ms, color="red", ls=":", lw=1)
    lat.set_ylabel("p99 (ms)", color="tab:orange")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_soak(
    rss: Mapping[str, Sequence[tuple[float, float]]],
    timeline: Sequence[Second],
    path: Path,
    title: str,
    bucket_s: int = 30,
) -> Path:
    """Each service's RSS over the run, and p50/p99 per ``bucket_s`` window (drift)."""
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t0 = timeline[0].t if timeline else min(t for v in rss.values() for t, _ in v)
    for name, points in sorted(rss.items()):
        ax.plot([t - t0 for t, _ in points], [mb for _, mb in points], lw=1.2, label=name)
    ax.set_ylabel("RSS (MiB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    buckets: dict[int, list[float]] = {}
    for s in timeline:
        buckets.setdefault(int((s.t - t0) // bucket_s), []).extend(s.latencies_ms)
    xs = [b * bucket_s + bucket_s / 2 for b in sorted(buckets)]
    ax2.plot(xs, [percentile(buckets[b], 0.5) for b in sorted(buckets)], "o-", label="p50")
    ax2.plot(xs, [percentile(buckets[b], 0.99) for b in sorted(buckets)], "s-", label="p99")
    ax2.set_ylabel(f"latency per {bucket_s} s (ms)")
    ax2.set_xlabel("seconds")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
