"""mixer/category_spread — no category takes more than ``max_share`` of the first page.

Excess items of a full category are deferred to after the page, in order (not dropped). If
too few categories are available to fill the page within the cap, the page is completed from
the deferred items in order (a full page beats a perfectly spread short one)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates


class CategorySpread:
    name = "category_spread"
    policy = Policy.OPEN

    def __init__(self, max_share: float = 0.4) -> None:
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share: must be in (0, 1], got {max_share}")
        self.max_share = max_share

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        page = min(ctx.count, len(cands))
        cap = max(1, math.floor(self.max_share * page))
        taken: Counter[int] = Counter()
        head: list[int] = []
        deferred: list[int] = []  # after the page, in order: the first of them fill a short page
        rest_at = len(cands)
        for i, category in enumerate(cands.category.tolist()):
            if len(head) == page:
                rest_at = i
                break
            if category >= 0 and taken[category] >= cap:
                deferred.append(i)
                continue
            taken[category] += 1
            head.append(i)
        if not deferred:
            return cands
        rest = np.arange(rest_at, len(cands))
        return cands.take(np.concatenate([np.asarray(head + deferred, np.int64), rest]))
