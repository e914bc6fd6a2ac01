"""Candidates as columns: one numpy array per field, from retrieval to the served page.

A home request carries ~500 candidates through ~15 stages. As one Python object each, building,
copying and re-reading them cost more CPU than the ANN search, the feature read and the ranker
together. As columns, a retrieval result is wrapped without a copy, a filter is one ``np.isin``,
hydration fills one matrix, the ranker scores a slice, and mixers reorder an index array. Only
the served page becomes :class:`~vidrec.pipeline.base.Candidate` objects (for the API, the
impression log and other effects).

Frames are immutable: a stage returns a new frame (``take``, ``with_``) that may share arrays
with its input; no stage writes into an array it did not allocate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from vidrec.pipeline.base import Candidate

Index = np.ndarray | slice

_EMPTY_I64 = np.zeros(0, dtype=np.int64)


def _i64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def _f64(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


@dataclass(frozen=True)
class RetrievedVideo:
    """One row of a :class:`Retrieved` (iteration, tests, the remote wire format)."""

    video_id: int
    score: float
    creator_id: int
    category: int
    upload_ts: int
    anchor_video_id: int = -1


@dataclass(frozen=True, eq=False)
class Retrieved:
    """What a retrieval call returns: aligned columns, in the source's order (best first)."""

    video_id: np.ndarray  # int64[N]
    score: np.ndarray  # float64[N]
    creator_id: np.ndarray  # int64[N]
    category: np.ndarray  # int64[N], -1 unknown
    upload_ts: np.ndarray  # int64[N], epoch ms
    anchor_video_id: np.ndarray  # int64[N], -1 none

    @classmethod
    def of(
        cls,
        video_id: Any,
        score: Any,
        creator_id: Any,
        category: Any,
        upload_ts: Any,
        anchor_video_id: Any = None,
    ) -> Retrieved:
        """Columns coerced to their dtypes (no copy when they already have them)."""
        ids = _i64(video_id)
        anchors = np.full(ids.size, -1, np.int64) if anchor_video_id is None else anchor_video_id
        return cls(ids, _f64(score), _i64(creator_id), _i64(category), _i64(upload_ts),
                   _i64(anchors))  # fmt: skip

    @classmethod
    def empty(cls) -> Retrieved:
        return cls.of(_EMPTY_I64, _EMPTY_I64, _EMPTY_I64, _EMPTY_I64, _EMPTY_I64)

    @classmethod
    def concat(cls, parts: Sequence[Retrieved]) -> Retrieved:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def take(self, idx: Index) -> Retrieved:
        return Retrieved(*(getattr(self, f.name)[idx] for f in fields(self)))

    def __len__(self) -> int:
        return int(self.video_id.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Retrieved):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside: not hashable

    def __iter__(self) -> Iterator[RetrievedVideo]:
        columns = (getattr(self, f.name).tolist() for f in fields(self))
        return (RetrievedVideo(*row) for row in zip(*columns, strict=True))

    def __getitem__(self, i: int) -> RetrievedVideo:
        return RetrievedVideo(*(getattr(self, f.name)[i].item() for f in fields(self)))


@dataclass(frozen=True)
class Candidates:
    """The candidate set of one request, as aligned columns.

    ``label`` indexes ``labels``, the ``(source, region)`` pairs of this frame: which source
    found each candidate (explanations, metrics, retrieval order) and the region a trending
    source searched. ``features`` and ``head_scores`` stay None until a hydrator / scorer fills
    them; ``has_features`` and ``ranked`` say which rows hold values.
    """

    video_id: np.ndarray  # int64[N]
    label: np.ndarray  # int64[N] into labels
    labels: tuple[tuple[str, str], ...]
    retrieval_score: np.ndarray  # float64[N]
    creator_id: np.ndarray  # int64[N]
    category: np.ndarray  # int64[N]
    upload_ts: np.ndarray  # int64[N]
    anchor_video_id: np.ndarray  # int64[N]
    score: np.ndarray  # float64[N]: final ordering score (ranked or retrieval order)
    has_features: np.ndarray  # bool[N]
    ranked: np.ndarray  # bool[N]
    features: np.ndarray | None = None  # float32[N, VIDEO_SPEC.dim]
    head_scores: np.ndarray | None = None  # float32[N, n_heads], calibrated
    explanation: tuple[str, ...] | None = None  # set last, on the served page

    # --- building -------------------------------------------------------------------------

    @classmethod
    def from_retrieved(
        cls, found: Retrieved, source: str, region: str = "", explanation: str | None = None
    ) -> Candidates:
        """A source's result as candidates, sharing its arrays."""
        n = len(found)
        return cls(
            video_id=found.video_id,
            label=np.zeros(n, np.int64),
            labels=((source, region),),
            retrieval_score=found.score,
            creator_id=found.creator_id,
            category=found.category,
            upload_ts=found.upload_ts,
            anchor_video_id=found.anchor_video_id,
            score=np.zeros(n, np.float64),
            has_features=np.zeros(n, bool),
            ranked=np.zeros(n, bool),
            explanation=None if explanation is None else (explanation,) * n,
        )

    @classmethod
    def empty(cls) -> Candidates:
        return cls.from_retrieved(Retrieved.empty(), "")

    @classmethod
    def from_list(cls, cands: Sequence[Candidate]) -> Candidates:
        """Objects → columns (tests and adapters; the hot path never builds objects)."""
        labels: dict[tuple[str, str], int] = {}
        label = [labels.setdefault((c.source, c.region), len(labels)) for c in cands]
        with_features = [c.features is not None for c in cands]
        features = None
        if any(with_features):
            dim = next(c.features for c in cands if c.features is not None).shape[-1]
            features = np.stack(
                [np.zeros(dim, np.float32) if c.features is None else c.features for c in cands]
            ).astype(np.float32)
        ranked = [c.head_scores is not None for c in cands]
        heads = None
        if any(ranked):
            h = next(c.head_scores for c in cands if c.head_scores is not None).shape[-1]
            heads = np.stack(
                [np.zeros(h, np.float32) if c.head_scores is None else c.head_scores
                 for c in cands]
            ).astype(np.float32)  # fmt: skip
        explained = any(c.explanation for c in cands)
        return cls(
            video_id=_i64([c.video_id for c in cands]),
            label=_i64(label),
            labels=tuple(labels),
            retrieval_score=_f64([c.retrieval_score for c in cands]),
            creator_id=_i64([c.creator_id for c in cands]),
            category=_i64([c.category for c in cands]),
            upload_ts=_i64([c.upload_ts for c in cands]),
            anchor_video_id=_i64([c.anchor_video_id for c in cands]),
            score=_f64([c.score for c in cands]),
            has_features=np.asarray(with_features, bool),
            ranked=np.asarray(ranked, bool),
            features=features,
            head_scores=heads,
            explanation=tuple(c.explanation for c in cands) if explained else None,
        )

    @classmethod
    def concat(cls, parts: Sequence[Candidates]) -> Candidates:
        """Rows of every part in order; equal ``(source, region)`` labels are merged."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        labels: dict[tuple[str, str], int] = {}
        remapped = []
        for p in parts:
            codes = _i64([labels.setdefault(lab, len(labels)) for lab in p.labels])
            remapped.append(codes[p.label])

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        def optional(name: str) -> np.ndarray | None:
            if all(getattr(p, name) is None for p in parts):
                return None
            width = next(getattr(p, name).shape[1] for p in parts if getattr(p, name) is not None)
            return np.concatenate([
                np.zeros((len(p), width), np.float32) if getattr(p, name) is None
                else getattr(p, name)
                for p in parts
            ])  # fmt: skip

        explanation = None
        if any(p.explanation is not None for p in parts):
            explanation = tuple(e for p in parts for e in (p.explanation or ("",) * len(p)))
        return cls(
            video_id=cat("video_id"),
            label=np.concatenate(remapped),
            labels=tuple(labels),
            retrieval_score=cat("retrieval_score"),
            creator_id=cat("creator_id"),
            category=cat("category"),
            upload_ts=cat("upload_ts"),
            anchor_video_id=cat("anchor_video_id"),
            score=cat("score"),
            has_features=cat("has_features"),
            ranked=cat("ranked"),
            features=optional("features"),
            head_scores=optional("head_scores"),
            explanation=explanation,
        )

    # --- reading and reshaping --------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.video_id.size)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self.to_list())

    def take(self, idx: Index) -> Candidates:
        """Rows ``idx`` (an index array, a boolean mask or a slice), in that order."""
        expl = self.explanation
        if expl is not None:
            picked = np.arange(len(self))[idx]
            expl = tuple(expl[i] for i in picked.tolist())
        return Candidates(
            video_id=self.video_id[idx],
            label=self.label[idx],
            labels=self.labels,
            retrieval_score=self.retrieval_score[idx],
            creator_id=self.creator_id[idx],
            category=self.category[idx],
            upload_ts=self.upload_ts[idx],
            anchor_video_id=self.anchor_video_id[idx],
            score=self.score[idx],
            has_features=self.has_features[idx],
            ranked=self.ranked[idx],
            features=None if self.features is None else self.features[idx],
            head_scores=None if self.head_scores is None else self.head_scores[idx],
            explanation=expl,
        )

    def head(self, n: int) -> Candidates:
        return self if n >= len(self) else self.take(slice(0, max(n, 0)))

    def with_(self, **columns: Any) -> Candidates:
        return replace(self, **columns)

    def sorted_by_score(self) -> Candidates:
        """Best score first; ties keep their order (a stable sort)."""
        return self.take(np.argsort(-self.score, kind="stable"))

    def label_mask(self, source: str) -> np.ndarray:
        """bool[N]: the rows found by ``source``."""
        codes = [i for i, (name, _) in enumerate(self.labels) if name == source]
        return np.isin(self.label, codes)

    def source_codes(self) -> np.ndarray:
        """int64[N]: each row's source, numbered by its first appearance in this order."""
        name_of_label = [name for name, _ in self.labels]
        names = list(dict.fromkeys(name_of_label))
        by_name = _i64([names.index(n) for n in name_of_label])[self.label]
        if by_name.size == 0:
            return by_name
        uniq, first = np.unique(by_name, return_index=True)
        rank = np.empty(int(uniq.max()) + 1, np.int64)
        rank[uniq[np.argsort(first)]] = np.arange(uniq.size)
        return rank[by_name]

    def to_list(self) -> list[Candidate]:
        """The rows as :class:`Candidate` objects (the served page)."""
        sources = [self.labels[i] for i in self.label.tolist()]
        features = self.features
        heads = self.head_scores
        has_f, ranked = self.has_features.tolist(), self.ranked.tolist()
        expl = self.explanation or ("",) * len(self)
        return [
            Candidate(
                video_id=v,
                source=src[0],
                retrieval_score=r,
                creator_id=c,
                category=g,
                upload_ts=u,
                anchor_video_id=a,
                region=src[1],
                features=features[i] if features is not None and has_f[i] else None,
                head_scores=heads[i] if heads is not None and ranked[i] else None,
                score=s,
                explanation=e,
            )
            for i, (v, src, r, c, g, u, a, s, e) in enumerate(
                zip(
                    self.video_id.tolist(), sources, self.retrieval_score.tolist(),
                    self.creator_id.tolist(), self.category.tolist(), self.upload_ts.tolist(),
                    self.anchor_video_id.tolist(), self.score.tolist(), expl, strict=True,
                )
            )
        ]  # fmt: skip


def dedupe_by_video(cands: Candidates) -> Candidates:
    """Union of sources by video id: the highest retrieval score wins (and keeps its source),
    sorted by retrieval score (descending; ties keep source order)."""
    order = np.argsort(-cands.retrieval_score, kind="stable")
    _, first = np.unique(cands.video_id[order], return_index=True)
    return cands.take(order[np.sort(first)])


__all__ = ["Candidates", "Retrieved", "RetrievedVideo", "dedupe_by_video"]
