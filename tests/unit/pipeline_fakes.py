"""Small in-memory implementations of the pipeline client protocols (real code, no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vidrec.config import ServingConfig
from vidrec.features.ranker_input import ranker_input_dim
from vidrec.features.spec import VIDEO_SPEC, user_spec
from vidrec.pipeline.base import Candidate, DependencyError, UserContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.clients import RankerAnswer
from vidrec.pipeline.retrievers import Query

STATIC_DIM = 4
SMALL_SOURCES = {"two_tower_k": 60, "related_k": 10, "trending_k": 30, "fresh_k": 15,
                 "same_creator_k": 15}  # fmt: skip


def generous_config(**fields: Any) -> ServingConfig:
    """ServingConfig with deadlines no stage meets by accident on two shared cores: the tests
    that use it check the pipeline's logic, not its timing."""
    deadlines = {f"deadline_{k}_ms": 1000 for k in
                 ("context", "sources", "filters", "hydrate", "score", "mix")}  # fmt: skip
    return replace(ServingConfig(), deadline_total_ms=5000, **{**deadlines, **fields})


DAY_MS = 86_400_000
NOW_MS = 1_760_000_000_000
REGIONS = ("central", "north")


class Catalogue:
    """Random videos with embeddings, creators, categories, upload times and popularity."""

    def __init__(self, n: int = 300, dim: int = 8, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.ids = np.arange(1000, 1000 + n)
        self.emb = rng.normal(size=(n, dim)).astype(np.float32)
        self.emb /= np.linalg.norm(self.emb, axis=1, keepdims=True)
        self.creator = rng.integers(0, n // 6, n)
        self.category = rng.integers(0, 8, n)
        self.upload_ts = NOW_MS - rng.integers(1, 30 * 24, n) * 3_600_000
        self.popularity = rng.gamma(1.0, 1.0, n)
        self.region = rng.choice(REGIONS, n)
        self.row = {int(v): i for i, v in enumerate(self.ids)}

    def videos(
        self, rows: np.ndarray, scores: np.ndarray, anchors: np.ndarray | None = None
    ) -> Retrieved:
        rows = np.asarray(rows, dtype=np.int64)
        return Retrieved.of(
            self.ids[rows], scores, self.creator[rows], self.category[rows],
            self.upload_ts[rows], anchors,
        )  # fmt: skip

    def video_matrix(self) -> np.ndarray:
        v = VIDEO_SPEC
        m = np.zeros((len(self.ids), v.dim), dtype=np.float32)
        m[:, v.slice("upload_day")] = (self.upload_ts // DAY_MS)[:, None]
        m[:, v.slice("upload_sec_of_day")] = ((self.upload_ts % DAY_MS) // 1000)[:, None]
        m[:, v.slice("smoothed_ctr")] = (self.popularity / (1 + self.popularity))[:, None]
        cats = m[:, v.slice("categories")]
        cats[np.arange(len(self.ids)), self.category] = 1.0
        m[:, v.slice("categories")] = cats
        m[:, v.slice("creator_id")] = self.creator[:, None]
        return m


@dataclass
class Faults:
    """Switchable faults for a fake dependency: raise, or be slow."""

    error: str | None = None  # a DependencyError reason
    delay_s: float = 0.0
    calls: int = 0

    async def hit(self) -> None:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise DependencyError(self.error, "injected")


@dataclass
class InMemoryRetrieval:
    cat: Catalogue
    faults: dict[str, Faults] = field(default_factory=dict)

    async def _fault(self, name: str) -> None:
        await self.faults.setdefault(name, Faults()).hit()

    def _top(self, scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
        s = np.where(mask, scores, -np.inf) if mask is not None else scores
        rows = np.argsort(-s, kind="stable")[:k]
        return rows[np.isfinite(s[rows])]

    async def retrieve(self, name: str, query: Query, k: int) -> Retrieved:
        """The generic call, answered by this fake's own list of each name."""
        lists = {
            "two_tower": lambda: self.two_tower(query.user_vector, query.video_ids, k),
            "related": lambda: self.related(query.video_ids, k),
            "trending": lambda: self.trending(query.region, k),
            "fresh": lambda: self.fresh(k, query.now_ms),
            "same_creator": lambda: self.same_creator(query.video_ids, k),
            "by_category": lambda: self.by_category(query.category, k),
            "popular": lambda: self.popular(k),
            "videos": lambda: self.videos(query.video_ids, k),
        }
        return await lists[name]()

    async def two_tower(self, user_vector: Any, history: Sequence[int], k: int) -> Retrieved:
        await self._fault("two_tower")
        q = user_vector[: self.cat.emb.shape[1]]  # the fake "user tower": a slice
        scores = self.cat.emb @ q
        rows = self._top(scores, k)
        return self.cat.videos(rows, scores[rows])

    async def related(self, video_ids: Sequence[int], k: int) -> Retrieved:
        await self._fault("related")
        out: list[Retrieved] = []
        for vid in (v for v in video_ids if v in self.cat.row):  # unknown anchors: none
            a = self.cat.row[vid]
            scores = self.cat.emb @ self.cat.emb[a]
            rows = self._top(scores, k, self.cat.ids != vid)
            out.append(self.cat.videos(rows, scores[rows], np.full(len(rows), vid)))
        return Retrieved.concat(out)

    async def trending(self, region: str, k: int) -> Retrieved:
        await self._fault("trending")
        rows = self._top(self.cat.popularity, k, self.cat.region == region)
        return self.cat.videos(rows, self.cat.popularity[rows])

    async def fresh(self, k: int, now_ms: int) -> Retrieved:
        await self._fault("fresh")
        rows = self._top(self.cat.upload_ts.astype(float), k)
        return self.cat.videos(rows, np.full(len(rows), 0.1))

    async def same_creator(self, video_ids: Sequence[int], k: int) -> Retrieved:
        await self._fault("same_creator")
        known = [v for v in video_ids if v in self.cat.row]  # unknown seeds: none
        if not known:
            return Retrieved.empty()
        creators = self.cat.creator[[self.cat.row[v] for v in known]]
        rows = self._top(self.cat.popularity, k, np.isin(self.cat.creator, creators))
        # Like the real retrieval: each found video names the first seed by its creator.
        seeds = np.asarray(known, np.int64)[np.argmax(self.cat.creator[rows, None] == creators, 1)]
        return self.cat.videos(rows, self.cat.popularity[rows], seeds)

    async def by_category(self, category: int, k: int) -> Retrieved:
        await self._fault("by_category")
        rows = self._top(self.cat.popularity, k, self.cat.category == category)
        return self.cat.videos(rows, self.cat.popularity[rows])

    async def videos(self, video_ids: Sequence[int], k: int) -> Retrieved:
        """The catalogue's records of the known ids (the related surface's anchor check)."""
        rows = np.asarray([self.cat.row[v] for v in video_ids if v in self.cat.row][:k], np.int64)
        return self.cat.videos(rows, np.zeros(rows.size))

    async def popular(self, k: int) -> Retrieved:
        await self._fault("popular")
        rows = self._top(self.cat.popularity, k)
        return self.cat.videos(rows, self.cat.popularity[rows])


def make_user(cat: Catalogue, user_id: int, seed: int = 1, **overrides: object) -> UserContext:
    rng = np.random.default_rng(seed)
    spec = user_spec(STATIC_DIM)
    vec = rng.normal(size=spec.dim).astype(np.float32)
    vec[spec.slice("recent_creators")] = -1
    fields: dict[str, object] = dict(
        user_id=user_id,
        known=True,
        vector=vec,
        region="central",
        device="android",
        recent_watches=tuple(int(v) for v in rng.choice(cat.ids, 5, replace=False)),
    )
    fields.update(overrides)
    return UserContext(**fields)  # type: ignore[arg-type]


@dataclass
class InMemoryFeatures:
    cat: Catalogue
    users: dict[int, UserContext] = field(default_factory=dict)
    missing: frozenset[int] = frozenset()  # videos without a feature row
    faults: dict[str, Faults] = field(default_factory=dict)
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = self.cat.video_matrix()

    async def user_context(self, user_id: int, region: str | None) -> UserContext:
        await self.faults.setdefault("user_context", Faults()).hit()
        if user_id in self.users:
            return self.users[user_id]
        return UserContext(
            user_id=user_id, known=False, vector=None, region=region or "central", device="unknown"
        )

    async def video_vectors(
        self, video_ids: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        await self.faults.setdefault("video_vectors", Faults()).hit()
        rows = np.array([self.cat.row.get(v, -1) for v in video_ids])
        present = (rows >= 0) & ~np.isin(np.asarray(video_ids), list(self.missing))
        out = np.where(present[:, None], self.matrix[rows], 0.0).astype(np.float32)
        return out, present


@dataclass
class MlpRanker:
    """A fixed random two-layer MLP with sigmoid heads: deterministic for a seed."""

    seed: int = 3
    faults: Faults = field(default_factory=Faults)
    batches: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        d = ranker_input_dim(STATIC_DIM)
        self.w1 = rng.normal(scale=0.3, size=(d, 16)).astype(np.float32)
        self.w2 = rng.normal(scale=0.3, size=(16, 3)).astype(np.float32)

    async def score(self, x: np.ndarray, variant: str) -> RankerAnswer:
        await self.faults.hit()
        self.batches.append((x.shape[0], variant))
        h = np.maximum(np.nan_to_num(x) @ self.w1, 0)
        return RankerAnswer((1 / (1 + np.exp(-(h @ self.w2)))).astype(np.float32), variant)


@dataclass
class ListSink:
    logged: list[tuple[str, str, int | None, list[int]]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)

    async def log(
        self,
        request_id: str,
        variant: str,
        user_id: int | None,
        served: Sequence[Candidate],
        now_ms: int,
    ) -> None:
        await self.faults.hit()
        self.logged.append((request_id, variant, user_id, [c.video_id for c in served]))
