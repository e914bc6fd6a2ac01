"""The request pipeline's vocabulary: candidates, the request context, stage kinds, policies.

After product-mixer: every part of a feed request is a small stage of one kind (source,
filter, hydrator, scorer, mixer, effect) with a ``name``, a default ``policy`` and one
async call. The runner (not the stage) applies deadlines from config, records latency, sizes and
degradations, so stages never import metrics code. I/O clients are injected, never built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from vidrec.pipeline.candidates import Candidates


class Policy(Enum):
    """What the parent does when a stage's *dependency* fails (timeout, down, open circuit).

    OPEN: skip the stage, pass its input through, mark the response degraded.
    CLOSED: the surface serves its fallback (safety filters: never silently skipped).
    A bug (type or schema error) is never absorbed by a policy.
    """

    OPEN = "open"
    CLOSED = "closed"


class DependencyError(Exception):
    """A dependency failed in a way a policy may absorb; ``reason`` becomes a metric label."""

    REASONS: ClassVar[frozenset[str]] = frozenset(
        {"timeout", "unavailable", "circuit_open", "error", "no_data", "unknown_region"}
    )

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(f"DependencyError: unknown reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class UnknownVideo(LookupError):
    """The request is about a video the catalogue does not hold (the related surface's anchor).

    The client's mistake, not a dependency fault: no policy absorbs it and no fallback is
    served, because a list "related to" a video that does not exist would answer a question
    nobody asked. The API answers 404 naming the id."""

    def __init__(self, video_id: int) -> None:
        super().__init__(f"video {video_id}: not in the catalogue")
        self.video_id = video_id


@dataclass(slots=True)
class Candidate:
    """One served video. Inside the pipeline candidates travel as columns
    (:class:`~vidrec.pipeline.candidates.Candidates`); the served page becomes these objects."""

    video_id: int
    source: str  # source stage name that produced it ("two_tower", "trending", ...)
    retrieval_score: float
    creator_id: int = -1
    category: int = -1  # primary category id, -1 unknown
    upload_ts: int = 0  # epoch ms
    anchor_video_id: int = -1  # for "because you watched …": the watched video it came from
    region: str = ""  # for "trending in …"
    features: np.ndarray | None = None  # packed video vector (hydrated), VIDEO_SPEC layout
    head_scores: np.ndarray | None = None  # calibrated [p_click, p_long_view, p_like]
    score: float = 0.0  # final ordering score (ranked or retrieval order)
    explanation: str = ""


@dataclass(frozen=True)
class UserContext:
    """Everything about the user the request needs, fetched in one round trip."""

    user_id: int
    known: bool  # False: no feature vector → cold-start answer
    vector: np.ndarray | None  # USER_SPEC layout
    region: str
    device: str
    recent_watches: tuple[int, ...] = ()  # most recent first
    seen: frozenset[int] = frozenset()
    not_interested_videos: frozenset[int] = frozenset()
    not_interested_creators: frozenset[int] = frozenset()
    blocked_creators: frozenset[int] = frozenset()
    session_depth: int = 0


@dataclass
class RequestContext:
    """The request as the stages see it. ``user`` is set by the context stage."""

    request_id: str
    surface: str
    variant: str
    now_ms: int
    count: int
    user_id: int | None = None
    region: str | None = None
    session_id: str | None = None
    anchor_video_id: int | None = None  # related surface
    category: int | None = None  # category surface
    interests: tuple[int, ...] = ()  # onboarding categories of a new user (cold start)
    user: UserContext | None = None
    degraded: list[str] = field(default_factory=list)  # "<stage>:<reason>"


@dataclass(frozen=True)
class FilterResult:
    kept: Candidates
    removed: Candidates

    @classmethod
    def keep_all(cls, cands: Candidates) -> FilterResult:
        return cls(cands, cands.head(0))

    @classmethod
    def partition(cls, cands: Candidates, drop: np.ndarray) -> FilterResult:
        """Split by a boolean mask (True: removed); both sides keep their order."""
        return cls(cands.take(~drop), cands.take(drop))


class Stage(Protocol):
    """A stage's deadline is not its own: the runner reads it from ``ServingConfig``."""

    name: str
    policy: Policy


class ContextStage(Stage, Protocol):
    async def __call__(self, ctx: RequestContext) -> UserContext: ...


class Source(Stage, Protocol):
    async def __call__(self, ctx: RequestContext) -> Candidates: ...


class Filter(Stage, Protocol):
    async def __call__(self, ctx: RequestContext, cands: Candidates) -> FilterResult: ...


class Hydrator(Stage, Protocol):
    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates: ...


class Scorer(Stage, Protocol):
    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates: ...


class Mixer(Stage, Protocol):
    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates: ...


class Effect(Stage, Protocol):
    async def __call__(self, ctx: RequestContext, served: Sequence[Candidate]) -> None: ...
