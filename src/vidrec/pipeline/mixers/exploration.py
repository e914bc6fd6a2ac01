"""mixer/exploration — reserve ``round(share·count)`` slots of the page for fresh videos.

A video is fresh if the fresh source found it or it is younger than ``max_age_h``. Slots sit
at evenly spaced, deterministic positions (never first: the top slot goes to the best item);
each is filled with the best remaining fresh video, other positions with the best remaining
item. Without enough fresh videos the slots fall back to normal order."""

from __future__ import annotations

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.mixers.freshness import age_hours


def slot_positions(count: int, slots: int) -> frozenset[int]:
    """``slots`` evenly spaced positions in 1..count-1, e.g. (10, 2) → {3, 6}."""
    return frozenset(((i + 1) * count) // (slots + 1) for i in range(slots)) - {0}


def fill_slots(n: int, page: int, slots: frozenset[int], preferred: list[int]) -> np.ndarray:
    """Positions 0..page-1 of a list of ``n`` items in order: each slot takes the best unused
    ``preferred`` item (indexes, best first), other positions the best unused item of any kind;
    a slot left without a preferred item takes the best unused one. Returns the page's indexes
    followed by the unused ones in order."""
    used = np.zeros(n, dtype=bool)
    out: list[int] = []
    nxt, nxt_pref = 0, 0
    for pos in range(page):
        while nxt_pref < len(preferred) and used[preferred[nxt_pref]]:
            nxt_pref += 1
        if pos in slots and nxt_pref < len(preferred):
            i = preferred[nxt_pref]
        else:
            while used[nxt]:
                nxt += 1
            i = nxt
        used[i] = True
        out.append(i)
    return np.concatenate([np.asarray(out, np.int64), np.flatnonzero(~used)])


class ExplorationSlots:
    name = "exploration"
    policy = Policy.OPEN

    def __init__(self, share: float, fresh_max_age_h: float, fresh_source: str = "fresh") -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"exploration_share: must be in [0, 1], got {share}")
        self.share, self.max_age_h, self.fresh_source = share, fresh_max_age_h, fresh_source

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        page = min(ctx.count, len(cands))
        slots = slot_positions(page, round(self.share * page))
        if not slots:
            return cands
        young = age_hours(cands, ctx.now_ms) < self.max_age_h
        fresh = np.flatnonzero(young | cands.label_mask(self.fresh_source)).tolist()
        return cands.take(fill_slots(len(cands), page, slots, fresh))
