"""mixer/anchor_share — a related page is mostly about the video on screen.

The related surface also retrieves from the viewer's history and from the anchor's creator,
and the ranker may prefer those, so without a rule a page "related to V" could hold two of
V's neighbours in twenty. This mixer reserves ``ceil(share·page)`` slots of the page (as many
as there are neighbours of V, if fewer) for the ``anchor`` source: evenly spaced from the top
(share 0.5: positions 0, 2, 4, …), each filled with V's best remaining neighbour; the other
positions take the best remaining item of any source. Items of other sources that did not
make the page are dropped, so the mixers after it (spread, exploration, creator runs), which
only reorder the list or pull items up from below the page, cannot bring the share under it.
"""

from __future__ import annotations

import math

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.mixers.exploration import fill_slots


class AnchorShare:
    name = "anchor_share"
    policy = Policy.OPEN

    def __init__(self, share: float, source: str = "anchor") -> None:
        if not 0 < share <= 1:
            raise ValueError(f"anchor_share: must be in (0, 1], got {share}")
        self.share, self.source = share, source

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        page = min(ctx.count, len(cands))
        anchored = cands.label_mask(self.source)
        reserved = min(math.ceil(self.share * page), int(anchored.sum()))
        if reserved == 0:
            return cands
        slots = frozenset((i * page) // reserved for i in range(reserved))
        order = fill_slots(len(cands), page, slots, np.flatnonzero(anchored).tolist())
        keep = np.ones(order.size, dtype=bool)
        keep[page:] = anchored[order[page:]]  # below the page: V's neighbours only
        return cands.take(order[keep])
