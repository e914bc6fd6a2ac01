"""What every retrieval-backed source shares: ask one named list, label it, explain it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidrec.pipeline.base import Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.retrievers import Query

DEFAULT_EXPLANATION = "recommended for you"
HISTORY_SEEDS = 5
"""How many of the most recent watches seed item-item and same-creator retrieval."""


@dataclass(frozen=True)
class Found:
    """What an explanation may use about one served item. An explanation must be true of the
    request that produced it, so it claims only what these fields and the request show."""

    source: str
    region: str  # the region a regional source searched ("" otherwise)
    anchor_video_id: int  # the video it was found from, -1 none
    category: int  # -1 unknown
    score: float = 0.0  # its retrieval score (popularity for the popularity-ordered lists)
    fresh: bool = False  # uploaded within ``serving.fresh_max_age_h`` of the request


EXPLANATIONS: dict[str, type[RetrievalSource]] = {}
"""Source name → its class (whose :meth:`~RetrievalSource.explain` labels served items)."""


def explanation(found: Found, ctx: RequestContext) -> str:
    """Why an item found by ``found.source`` is on the page."""
    source = EXPLANATIONS.get(found.source)
    return DEFAULT_EXPLANATION if source is None else source.explain(found, ctx)


class RetrievalSource:
    """A source that asks retrieval for the list named ``retriever`` (its own name unless it
    shares another source's retrieval). Subclasses say what to ask and why an item is here."""

    name: str
    retriever: str = ""
    policy: Policy = Policy.OPEN

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            EXPLANATIONS[cls.name] = cls

    def __init__(self, retrieval: RetrievalClient, k: int) -> None:
        self.retrieval, self.k = retrieval, k

    def query(self, ctx: RequestContext) -> Query | None:
        """What to ask for this request; None: nothing to ask (an empty answer)."""
        raise NotImplementedError

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return DEFAULT_EXPLANATION

    async def __call__(self, ctx: RequestContext) -> Candidates:
        query = self.query(ctx)
        if query is None:
            return Candidates.empty()
        found = await self.retrieval.retrieve(self.retriever or self.name, query, self.k)
        return Candidates.from_retrieved(found, self.name, query.region)


def recent_watches(ctx: RequestContext, n: int = HISTORY_SEEDS) -> tuple[int, ...]:
    return () if ctx.user is None else ctx.user.recent_watches[:n]


def required(value: int | None, field: str, surface: str) -> int:
    """A request field the surface cannot work without (the API validates it first)."""
    if value is None:
        raise ValueError(f"{field}: required by the {surface} surface")
    return value


def watched(ctx: RequestContext, video_id: int) -> bool:
    """Whether ``video_id`` is in the user's history as this request saw it."""
    return video_id >= 0 and ctx.user is not None and video_id in ctx.user.recent_watches


def because_you_watched(found: Found, ctx: RequestContext) -> str | None:
    """ "because you watched X" only when X is in the user's history (not merely an anchor)."""
    anchor = found.anchor_video_id
    return f"because you watched {anchor}" if watched(ctx, anchor) else None


@dataclass(frozen=True)
class Grouped:
    """Catalogue rows grouped by one column, most popular first within a group."""

    rows: np.ndarray
    key: np.ndarray  # that column's value of each of those rows (sorted, for searchsorted)

    @classmethod
    def by(cls, key: np.ndarray, popularity: np.ndarray) -> Grouped:
        rows = np.lexsort((-popularity, key))
        return cls(rows, key[rows])


def interleaved(rank: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Order taking every group's best, then every group's second, ... (``rank`` = place
    within its group; ties by score), so one anchor cannot fill the list alone."""
    return np.lexsort((-score, rank))


def first_occurrences(ids: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each id, in input order."""
    _, first = np.unique(ids, return_index=True)
    return np.sort(first)


def unique_in_order(video_ids: tuple[int, ...]) -> np.ndarray:
    return np.asarray(list(dict.fromkeys(int(v) for v in video_ids)), dtype=np.int64)
