"""Quality gate: a new model is exported only if it beats the reference by a relative margin.

The reference is the popularity baseline measured on the same test day or, when a previous
model's manifest is given, that model's own metrics. Each failed check becomes a sentence a
person can act on; the CLI prints them and exits non-zero.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vidrec.errors import InputError

RETRIEVAL_KEY = "retrieval.recall@100"
RANKING_KEY = "ranking.ndcg@10"

# (label in sentences, new model's key, popularity key on the same run)
_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("two-tower recall@100", RETRIEVAL_KEY, "retrieval.popularity_recall@100"),
    ("ranker NDCG@10", RANKING_KEY, "ranking.popularity_ndcg@10"),
)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]  # one sentence per failed check
    checks: list[str] = field(default_factory=list)  # one sentence per check, passed or not


def _metric(metrics: Mapping[str, float], key: str, source: str) -> float:
    if key not in metrics:
        raise KeyError(f"{source}: missing metric {key!r}")
    return float(metrics[key])


def quality_gate(
    metrics: Mapping[str, float],
    baseline_metrics: Mapping[str, float] | None,
    margin: float,
) -> GateResult:
    """Pass iff every check has ``value ≥ (1 + margin) × reference`` and ``value > reference``."""
    if margin < 0:
        raise InputError(f"quality_gate: margin must be >= 0, got {margin}")
    factor = 1.0 + margin
    reasons: list[str] = []
    checks: list[str] = []
    for label, key, popularity_key in _CHECKS:
        value = _metric(metrics, key, "metrics")
        if baseline_metrics is None:
            ref_name, reference = "popularity", _metric(metrics, popularity_key, "metrics")
        else:
            ref_name = "the previous model"
            reference = _metric(baseline_metrics, key, "baseline metrics")
        ok = (
            math.isfinite(value)
            and math.isfinite(reference)
            and value >= factor * reference
            and value > reference
        )
        relation = "≥" if ok else "is not ≥"
        sentence = f"{label} {value:.4f} {relation} {factor:.2f} × {ref_name} {reference:.4f}"
        checks.append(sentence)
        if not ok:
            reasons.append(sentence)
    return GateResult(passed=not reasons, reasons=reasons, checks=checks)


def metrics_from_manifest(path: Path) -> dict[str, float]:
    """The ``metrics`` object of a previous build's ``manifest.json`` (``--baseline``)."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read manifest: {exc}") from exc
    metrics = manifest.get("metrics") if isinstance(manifest, dict) else None
    if not isinstance(metrics, dict):
        raise InputError(f"{path}: field 'metrics' is missing or not an object")
    try:
        return {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: field 'metrics' must map names to numbers: {exc}") from exc
