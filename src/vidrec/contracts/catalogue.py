"""The catalogue as serving and the event processor read it: aligned numpy columns by id.

Read from the artefact's rule table (``serving/videos.parquet``,
:mod:`vidrec.contracts.artefacts`). Uploads join a running process (cold start) without a
restart: :meth:`Catalogue.with_videos` returns a new catalogue (readers keep the one they hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.contracts.artefacts import RULE_TABLES_COMMAND, SERVING_DIR, VIDEOS_FILE, require
from vidrec.contracts.positions import Positions


@dataclass(frozen=True)
class Catalogue:
    """Video metadata as aligned numpy columns sorted by id, for vectorised lookups."""

    video_id: np.ndarray
    creator_id: np.ndarray
    category: np.ndarray
    upload_ts: np.ndarray
    popularity: np.ndarray

    @classmethod
    def from_table(cls, table: pl.DataFrame) -> Catalogue:
        t = table.sort("video_id")
        return cls(
            video_id=t["video_id"].to_numpy(),
            creator_id=t["creator_id"].to_numpy(),
            category=t["primary_category"].fill_null(-1).to_numpy(),
            upload_ts=t["upload_ts"].to_numpy(),
            popularity=t["popularity"].to_numpy().astype(np.float32),
        )

    def __post_init__(self) -> None:
        _ = self.positions  # built with the catalogue (off the request path), not on first use

    @cached_property
    def positions(self) -> Positions:
        return Positions(self.video_id)

    def rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, known)``: row of each id; ``known`` False for ids not in the catalogue."""
        return self.positions.find(ids)

    def with_videos(
        self, video_id: np.ndarray, creator_id: np.ndarray, category: np.ndarray,
        upload_ts: np.ndarray,
    ) -> Catalogue:  # fmt: skip
        """A new catalogue with these videos added (popularity 0); ids already known are kept
        as they are, so a replayed upload changes nothing."""
        new = ~self.rows(video_id)[1] if self.video_id.size else np.ones(video_id.size, bool)
        new &= first_of_each(video_id)
        order = np.argsort(np.concatenate([self.video_id, video_id[new]]), kind="stable")

        def merged(old: np.ndarray, add: np.ndarray) -> np.ndarray:
            return np.concatenate([old, np.asarray(add, dtype=old.dtype)[new]])[order]

        return Catalogue(
            video_id=merged(self.video_id, video_id),
            creator_id=merged(self.creator_id, creator_id),
            category=merged(self.category, category),
            upload_ts=merged(self.upload_ts, upload_ts),
            popularity=merged(self.popularity, np.zeros(video_id.size, np.float32)),
        )


def first_of_each(ids: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each id."""
    mask = np.zeros(ids.size, dtype=bool)
    mask[np.unique(ids, return_index=True)[1]] = True
    return mask


def read_catalogue(root: Path) -> Catalogue:
    """The catalogue of artefact directory ``root`` (its rule table, not the whole state)."""
    table = require(root, f"{SERVING_DIR}/{VIDEOS_FILE}", RULE_TABLES_COMMAND)
    return Catalogue.from_table(pl.read_parquet(table))
