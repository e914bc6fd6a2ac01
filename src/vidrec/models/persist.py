"""Save and load trained models: ``torch.save(state_dict)`` plus a JSON of shapes and curves.

Layout of ``dir``: ``two_tower.pt``, ``ranker.pt`` (weights, git-ignored artefacts),
``item_embeddings.npy`` + ``video_ids.npy`` (for the ANN index), ``models.json``
(specs, hyper-parameters, loss curves). State dicts are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidrec.errors import InputError
from vidrec.models.calibration import PlattParams
from vidrec.models.mmoe import MMoE, RankerResult, RankerServing, RankerSpec
from vidrec.models.params import RankerParams, TwoTowerParams
from vidrec.models.two_tower import TwoTower, TwoTowerResult, TwoTowerSpec
from vidrec.schema import RANKER_HEADS

FORMAT_VERSION = 1
MANIFEST = "models.json"


@dataclass
class ModelBundle:
    two_tower: TwoTowerResult
    ranker: RankerResult


def save_models(directory: Path, two_tower: TwoTowerResult, ranker: RankerResult) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(two_tower.model.state_dict(), directory / "two_tower.pt")
    torch.save(ranker.serving.state_dict(), directory / "ranker.pt")
    np.save(directory / "item_embeddings.npy", two_tower.item_embeddings)
    np.save(directory / "video_ids.npy", two_tower.video_ids)
    meta = {
        "format": FORMAT_VERSION,
        "two_tower": {
            "spec": dataclasses.asdict(two_tower.model.spec),
            "params": dataclasses.asdict(two_tower.params),
            "losses": two_tower.losses,
        },
        "ranker": {
            "spec": dataclasses.asdict(ranker.model.spec),
            "params": dataclasses.asdict(ranker.params),
            "train_loss": ranker.train_loss,
            "valid_loss": ranker.valid_loss,
            "best_epoch": ranker.best_epoch,
        },
    }
    (directory / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n")


def _section(meta: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    section = meta.get(name)
    if not isinstance(section, dict):
        raise InputError(f"{path}: field {name!r} is missing or not an object")
    return section


def _load_state(module: torch.nn.Module, path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: model weights not found")
    module.load_state_dict(torch.load(path, weights_only=True))
    module.eval()


def load_models(directory: Path) -> ModelBundle:
    directory = Path(directory)
    manifest = directory / MANIFEST
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{manifest}: cannot read model metadata: {exc}") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise InputError(f"{manifest}: field 'format' is {meta.get('format')!r}, expected 1")
    tt, rk = _section(meta, "two_tower", manifest), _section(meta, "ranker", manifest)
    try:
        tt_spec, rk_spec = TwoTowerSpec(**tt["spec"]), RankerSpec(**rk["spec"])
        tt_params, rk_params = TwoTowerParams(**tt["params"]), RankerParams(**rk["params"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"{manifest}: bad 'spec' or 'params': {exc}") from exc

    two_tower = TwoTower(tt_spec)
    _load_state(two_tower, directory / "two_tower.pt")
    serving = RankerServing(MMoE(rk_spec), PlattParams.identity(len(RANKER_HEADS)))
    _load_state(serving, directory / "ranker.pt")
    return ModelBundle(
        two_tower=TwoTowerResult(
            model=two_tower,
            item_embeddings=np.load(directory / "item_embeddings.npy"),
            video_ids=np.load(directory / "video_ids.npy"),
            losses=list(tt["losses"]),
            params=tt_params,
        ),
        ranker=RankerResult(
            model=serving.ranker,
            serving=serving,
            train_loss=list(rk["train_loss"]),
            valid_loss=list(rk["valid_loss"]),
            best_epoch=int(rk["best_epoch"]),
            params=rk_params,
        ),
    )
