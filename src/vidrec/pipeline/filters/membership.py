"""The one loop every set-membership filter shares."""

from __future__ import annotations

from collections.abc import Callable

from vidrec.pipeline.base import Candidate, FilterResult


def partition(cands: list[Candidate], drop: Callable[[Candidate], bool]) -> FilterResult:
    kept: list[Candidate] = []
    removed: list[Candidate] = []
    for c in cands:
        (removed if drop(c) else kept).append(c)
    return FilterResult(kept, removed)
