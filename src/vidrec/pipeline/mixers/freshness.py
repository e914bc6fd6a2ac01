"""mixer/freshness — lift young videos: factor ``1 + boost·2^(-age_h / half_life_h)``.

Ranked scores (>= 0) are multiplied by the factor, retrieval-order scores (< 0) divided by it,
so the boost moves an item up in either regime. Unknown upload time (0): no boost."""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates

HOUR_MS = 3_600_000


def age_hours(cands: Candidates, now_ms: int) -> np.ndarray:
    """Age per candidate in hours; +inf where the upload time is unknown."""
    upload = cands.upload_ts.astype(np.float64)
    age = np.maximum(now_ms - upload, 0.0) / HOUR_MS
    return np.where(upload > 0, age, np.inf)


class FreshnessBoost:
    name = "freshness"
    policy = Policy.OPEN

    def __init__(self, boost: float, half_life_h: float) -> None:
        if boost < 0 or half_life_h <= 0:
            raise ValueError(
                f"freshness: need boost >= 0 and half_life_h > 0, got {boost}, {half_life_h}"
            )
        self.boost, self.half_life_h = boost, half_life_h

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        if not len(cands):
            return cands
        factor = 1.0 + self.boost * np.exp2(-age_hours(cands, ctx.now_ms) / self.half_life_h)
        scores = cands.score
        boosted = np.where(scores >= 0, scores * factor, scores / factor)
        return cands.with_(score=boosted).sorted_by_score()
