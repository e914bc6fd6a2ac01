"""mixer/creator_run — at most ``max_run`` consecutive items from one creator.

Greedy over the page: each position takes the best remaining item that does not extend a
too-long run; the rest keep their order. An item is dropped only when nothing else is left
(every remaining item is by the creator of the current run). Runs last among the mixers that
reorder, so the rule holds on the final list (a prefix of a valid list is valid)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates


def limit_runs(creators: Sequence[int], max_run: int, page: int) -> list[int]:
    """Positions of the first ``page`` items reordered to respect ``max_run``, then the rest
    unchanged (``creators[i]`` is item i's creator). Unknown creators (-1) never form a run."""
    remaining = list(range(len(creators)))
    out: list[int] = []
    run_creator, run = -1, 0
    while remaining and len(out) < page:
        pick = next(
            (j for j, i in enumerate(remaining)
             if creators[i] != run_creator or creators[i] < 0 or run < max_run),
            None,
        )  # fmt: skip
        if pick is None:
            return out  # impossible: only the run's creator is left
        i = remaining.pop(pick)
        run = run + 1 if creators[i] == run_creator else 1
        run_creator = creators[i]
        out.append(i)
    return out + remaining


class CreatorRun:
    name = "creator_run"
    policy = Policy.OPEN

    def __init__(self, max_run: int) -> None:
        if max_run < 1:
            raise ValueError(f"max_creator_run: must be >= 1, got {max_run}")
        self.max_run = max_run

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        order = limit_runs(cands.creator_id.tolist(), self.max_run, ctx.count)
        return cands.take(np.asarray(order, np.int64))
