"""Quality gate: a new model is exported only if it beats the reference by a relative margin.

The reference is the popularity baseline measured on the same test split or, when a previous
model's manifest is given, that model's own metrics. Each failed check becomes a sentence a
person can act on; the CLI prints them and exits non-zero. A metric the test data leaves
undefined (``undefined``: no negatives, a single class) is never judged: its check says why
it was skipped, and a gate with no check left to judge refuses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vidrec.errors import InputError

RETRIEVAL_KEY = "eval.two_tower.recall@100"
RANKING_KEY = "eval.ranker.ndcg@10"

# (label in sentences, new model's key, popularity key on the same run)
_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("two-tower recall@100", RETRIEVAL_KEY, "eval.popularity.recall@100"),
    ("ranker NDCG@10", RANKING_KEY, "eval.slate_popularity.ndcg@10"),
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


def _baseline_metric(metrics: Mapping[str, float], key: str) -> float:
    if key not in metrics:
        raise InputError(
            f"--baseline: the previous model's manifest has no metric {key!r} (written before"
            " it was measured?); rebuild that model or leave --baseline out"
        )
    return float(metrics[key])


def quality_gate(
    metrics: Mapping[str, float],
    baseline_metrics: Mapping[str, float] | None,
    margin: float,
    undefined: Mapping[str, str] | None = None,
) -> GateResult:
    """Pass iff every judged check has ``value ≥ (1 + margin) × reference``, ``value > reference``.

    ``undefined`` maps keys to why they are not numbers (this run's or the previous model's):
    a check on such a key is skipped with that reason, never counted as a failure or a pass.
    """
    if margin < 0:
        raise InputError(f"quality_gate: margin must be >= 0, got {margin}")
    undefined = undefined or {}
    factor = 1.0 + margin
    reasons: list[str] = []
    checks: list[str] = []
    for label, key, popularity_key in _CHECKS:
        ref_key = popularity_key if baseline_metrics is None else key
        why = undefined.get(key) or undefined.get(ref_key)
        if why is not None:
            checks.append(f"{label} not judged: {why}")
            continue
        value = _metric(metrics, key, "metrics")
        if baseline_metrics is None:
            ref_name, reference = "popularity", _metric(metrics, popularity_key, "metrics")
        else:
            ref_name = "the previous model"
            reference = _baseline_metric(baseline_metrics, key)
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
    if len(checks) == sum("not judged" in c for c in checks):
        reasons.append("no gate check could be judged on this test data: " + "; ".join(checks))
    return GateResult(passed=not reasons, reasons=reasons, checks=checks)


def _read(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read manifest: {exc}") from exc


def undefined_from_manifest(path: Path) -> dict[str, str]:
    """The ``evaluation.undefined`` reasons of a previous build (empty for older manifests)."""
    manifest = _read(path)
    evaluation = manifest.get("evaluation") if isinstance(manifest, dict) else None
    undefined = evaluation.get("undefined") if isinstance(evaluation, dict) else None
    return {str(k): str(v) for k, v in undefined.items()} if isinstance(undefined, dict) else {}


def metrics_from_manifest(path: Path) -> dict[str, float]:
    """The ``metrics`` object of a previous build's ``manifest.json`` (``--baseline``)."""
    manifest = _read(path)
    metrics = manifest.get("metrics") if isinstance(manifest, dict) else None
    if not isinstance(metrics, dict):
        raise InputError(f"{path}: field 'metrics' is missing or not an object")
    try:
        return {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: field 'metrics' must map names to numbers: {exc}") from exc
