"""``manifest.json``: what a model artefact is, what it was trained on, how good it is.

The serving side, the rollout operator and the quality gate read metrics by their stable keys
(``retrieval.recall@100``, ``ranking.auc.p_click``, ...), so the keys never change meaning.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidrec.errors import InputError


@dataclass(frozen=True)
class Manifest:
    model_version: str
    created_at: str
    profile: str
    seed: int
    feature_specs: dict[str, dict[str, Any]]
    data_window: dict[str, Any]
    metrics: dict[str, float]
    artefacts: dict[str, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    # How ``metrics`` were measured: split, protocol (filtered/unfiltered), row counts, the
    # keys left undefined with their reasons, and the gate's checks (vidrec.models.evaluate).
    evaluation: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path) -> Manifest:
    if not path.exists():
        raise InputError(f"{path}: no manifest here; run `vidrec pipeline run --out DIR` first")
    try:
        raw = json.loads(path.read_text())
        return Manifest(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise InputError(f"{path}: not a vidrec manifest ({exc})") from exc
