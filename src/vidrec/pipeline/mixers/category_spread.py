"""mixer/category_spread — no category takes more than ``max_share`` of the first page.

Excess items of a full category are deferred to after the page, in order (not dropped). If
too few categories are available to fill the page within the cap, the page is completed from
the deferred items in order (a full page beats a perfectly spread short one)."""

from __future__ import annotations

import math
from collections import Counter

from vidrec.pipeline.base import Candidate, Policy, RequestContext


class CategorySpread:
    name = "category_spread"
    policy = Policy.OPEN
    deadline_ms = 5

    def __init__(self, max_share: float = 0.4) -> None:
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share: must be in (0, 1], got {max_share}")
        self.max_share = max_share

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> list[Candidate]:
        page = min(ctx.count, len(cands))
        cap = max(1, math.floor(self.max_share * page))
        taken: Counter[int] = Counter()
        head: list[Candidate] = []
        deferred: list[Candidate] = []
        rest_at = len(cands)
        for i, c in enumerate(cands):
            if len(head) == page:
                rest_at = i
                break
            if c.category >= 0 and taken[c.category] >= cap:
                deferred.append(c)
                continue
            taken[c.category] += 1
            head.append(c)
        missing = page - len(head)
        return head + deferred[:missing] + deferred[missing:] + cands[rest_at:]
