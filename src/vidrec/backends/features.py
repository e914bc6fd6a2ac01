"""The online feature fetcher: user context in one round trip, video vectors behind an LRU.

User vector and session state share a hash tag (``{b<k>}``), so they are read with ONE MGET
even on a cluster. Video vectors of a candidate set are served from an in-process LRU of hot
videos and ONE bulk read of the misses (one MGET per slot on a cluster), on the event loop
itself (``aget_many``: no worker thread per read). Blobs written under
another feature spec are counted and treated as missing, never misread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidrec.backends.calls import BlockingCalls
from vidrec.backends.lru import VectorLRU
from vidrec.config import ServingConfig
from vidrec.features import VIDEO_SPEC, FeatureSpec, pack, unpack_many
from vidrec.features.codec import CorruptValue, SpecMismatch, blob_size
from vidrec.features.session import SESSION_ENTITY, SessionState
from vidrec.features.stores import (
    USER_ENTITY,
    VIDEO_ENTITY,
    OnlineStore,
    key_for,
)
from vidrec.pipeline.base import UserContext
from vidrec.pipeline.resilience import CircuitBreaker

UNKNOWN_DEVICE = "unknown"
DEFAULT_SERVING = ServingConfig()


def user_keys(user_id: int, n_buckets: int) -> list[str]:
    """``[user vector, session]`` keys: one MGET on Redis (both keys share a slot)."""
    return [key_for(e, user_id, n_buckets) for e in (USER_ENTITY, SESSION_ENTITY)]


def _well_formed(spec: FeatureSpec, blobs: Sequence[bytes | None]) -> list[bytes | None]:
    """``blobs`` with every blob not written under ``spec`` replaced by None (slow path).

    The first 16 header bytes (magic, format, spec hash) are those of any blob ``pack`` writes.
    """
    prefix = pack(spec, np.zeros(spec.dim, dtype=np.float32), 0)[:16]
    size = blob_size(spec)
    return [b if b is not None and len(b) == size and b[:16] == prefix else None for b in blobs]


class FeatureFetcher:
    """:class:`~vidrec.pipeline.clients.FeatureClient` over an online store.

    Counters (read by the metrics exporter): ``lru.hits`` / ``lru.misses``,
    ``videos_requested`` / ``videos_present`` (:attr:`fill_rate`), ``spec_mismatches``.
    """

    def __init__(
        self,
        store: OnlineStore,
        user_spec: FeatureSpec,
        cfg: ServingConfig = DEFAULT_SERVING,
        *,
        n_buckets: int | None = None,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 32,
    ) -> None:
        self.store = store
        self.user_spec = user_spec
        self.cfg = cfg
        self.n_buckets = n_buckets or int(getattr(store, "n_buckets"))  # noqa: B009
        self.breaker = breaker or CircuitBreaker.of(cfg, "features")
        self._calls = BlockingCalls(self.breaker, max_concurrency)
        self.lru = VectorLRU(cfg.lru_size, VIDEO_SPEC.dim)
        self.videos_requested = 0
        self.videos_present = 0
        self.spec_mismatches = 0

    @property
    def fill_rate(self) -> float:
        return self.videos_present / self.videos_requested if self.videos_requested else 1.0

    async def user_context(self, user_id: int, region: str | None) -> UserContext:
        blobs = await self._calls.run_async(
            lambda: self.store.aget_keys(user_keys(user_id, self.n_buckets)),
            self.cfg.deadline_context_ms / 1000,
        )
        vectors, _, present = self._unpack(self.user_spec, blobs[:1])
        session = self._session(blobs[1])
        known = bool(present[0])
        return UserContext(
            user_id=user_id,
            known=known,
            vector=vectors[0] if known else None,
            region=region or session.region or self.cfg.default_region,
            device=session.device or UNKNOWN_DEVICE,
            recent_watches=session.recent_watches,
            seen=frozenset(session.seen),
            not_interested_videos=session.not_interested_videos,
            not_interested_creators=session.not_interested_creators,
            blocked_creators=session.blocked_creators,
            session_depth=session.session_depth,
        )

    async def video_vectors(
        self, video_ids: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(video_ids, dtype=np.int64)
        out = np.zeros((ids.size, VIDEO_SPEC.dim), dtype=np.float32)
        present = np.zeros(ids.size, dtype=bool)
        slots = self.lru.lookup(ids)
        hit = slots >= 0
        out[hit] = self.lru.take(slots[hit])
        present[hit] = True
        miss_pos = np.flatnonzero(~hit)
        if miss_pos.size:
            # Candidates arrive deduplicated; a repeated id is only read twice, not an error.
            missed = ids[miss_pos]
            wanted: list[int] = missed.tolist()
            blobs = await self._calls.run_async(
                lambda: self.store.aget_many(VIDEO_ENTITY, wanted),
                self.cfg.deadline_hydrate_ms / 1000,
            )
            values, _, found = self._unpack(VIDEO_SPEC, blobs)
            out[miss_pos] = values
            present[miss_pos] = found
            self.lru.insert(missed[found], values[found])
        self.videos_requested += ids.size
        self.videos_present += int(present.sum())
        return out, present

    def _unpack(
        self, spec: FeatureSpec, blobs: Sequence[bytes | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            return unpack_many(spec, blobs)
        except (SpecMismatch, CorruptValue):
            clean = _well_formed(spec, blobs)
            dropped = zip(blobs, clean, strict=True)
            self.spec_mismatches += sum(a is not None and b is None for a, b in dropped)
            return unpack_many(spec, clean)

    def _session(self, blob: bytes | None) -> SessionState:
        if blob is None:
            return SessionState()
        try:
            return SessionState.decode(blob)
        except CorruptValue:
            self.spec_mismatches += 1
            return SessionState()
