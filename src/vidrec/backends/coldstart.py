"""Cold start: a new upload becomes retrievable in every running process within seconds.

Uploads (``POST /api/v1/videos`` and ``upload`` events) land on ``<prefix>:videos``. Each
serving process tails that stream with plain ``XREAD`` (its own cursor, not a consumer group:
every replica must see every video), embeds new videos with the two-tower item tower, which
needs only content (categories, duration, creator), and adds them to its
:class:`~vidrec.backends.retrieval.LocalRetrieval` (ANN index, fresh list, catalogue). It also
writes each video's packed ``VIDEO_SPEC`` vector (zero counters, prior CTR) so hydration finds
it before the real-time processor has seen a single view.

The item tower runs in torch, loaded once: a batch of 64 embeds in ~1 ms on one thread, so an
ONNX export would buy nothing here. Everything runs in one daemon thread, off the request path.
An entry that is not a valid upload, holds a value ``VIDEO_SCHEMA`` cannot, or fails to be
added on its own (a batch that fails is retried one upload at a time) is dead-lettered as group
``events.coldstart_group`` (:mod:`vidrec.contracts.dead_letters`; every replica reads every
entry, and the dead letter is written once) and counted; the cursor moves past it. Nothing a
stream entry holds stops the loop or the server.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import redis
from pydantic import ValidationError
from redis.cluster import RedisCluster

from vidrec.backends.retrieval import LocalRetrieval, NewVideos
from vidrec.backends.serving_state import ServingState
from vidrec.config import EventsConfig
from vidrec.contracts.dead_letters import (
    MISSING,
    OUT_OF_RANGE,
    REJECTED,
    UNPARSEABLE,
    DeadLetters,
    out_of_range,
)
from vidrec.features import VIDEO_ENTITY, VIDEO_SPEC, OnlineStore, pack_many, snapshot_videos
from vidrec.features.stores import node_client, refresh_slots
from vidrec.schema import EVENT_SCHEMA, VIDEO_SCHEMA, EngagementEvent, EventType, VideoUpload

log = logging.getLogger(__name__)

BATCH = 64  # entries per XREAD: small batches keep the time-to-live of an upload low
BLOCK_MS = 1000  # XREAD blocks this long, so stop() returns within about a second
BLOCK_SHARE = 0.6  # of the client's socket timeout: a blocking read must answer before it
BACKOFF_S = 1.0  # after a failed read (Redis down): wait, then resume from the same cursor
_EMPTY_EVENTS = pl.DataFrame(schema=EVENT_SCHEMA)


class ItemEmbedder(Protocol):
    """``TwoTower.embed_videos``: L2-normalised float32[N, E] for a ``VIDEO_SCHEMA`` table."""

    def embed_videos(self, videos: pl.DataFrame) -> np.ndarray: ...


def load_item_embedder(state: ServingState) -> ItemEmbedder:
    """The trained two-tower model of the served artefacts (torch imported only here)."""
    import torch

    from vidrec.models import load_models

    torch.set_num_threads(1)  # tiny batches; leave the cores to the request path
    models = state.root / state.manifest.artefacts.get("models", "models")
    return load_models(Path(models)).two_tower.model


class BadEntry(ValueError):
    """A stream entry that can never become an upload; ``reason`` names why (dead letters)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_entry(fields: dict[Any, Any]) -> VideoUpload:
    """A ``<prefix>:videos`` entry: a ``video`` (the webhook's row) or an ``upload`` event
    (creator = user, no categories). Raises ``ValueError`` for anything else (a
    :class:`BadEntry` when the entry is not an upload or a value overflows its column)."""
    upload = _upload(fields)
    if too_big := out_of_range(upload.model_dump(), VIDEO_SCHEMA):
        raise BadEntry(OUT_OF_RANGE, too_big)
    return upload


def _upload(fields: dict[Any, Any]) -> VideoUpload:
    fields = {_text(k): _text(v) for k, v in fields.items()}
    if "video" in fields:
        return VideoUpload.model_validate_json(fields["video"])
    if "event" in fields:
        ev = EngagementEvent.model_validate_json(fields["event"])
        if ev.type is not EventType.UPLOAD:
            raise BadEntry(UNPARSEABLE, f"event {ev.event_id}: type {ev.type}, expected upload")
        # Validated as an event already; duration may be 0 (unknown), which the tower accepts.
        return VideoUpload.model_construct(
            video_id=ev.video_id, creator_id=ev.user_id, category_ids=[], caption="",
            duration_ms=ev.video_duration_ms, upload_ts=ev.ts,
        )  # fmt: skip
    raise BadEntry(MISSING, f"entry has neither 'video' nor 'event' (fields {sorted(fields)})")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def videos_frame(uploads: Sequence[VideoUpload]) -> pl.DataFrame:
    """Uploads as a catalogue table (``VIDEO_SCHEMA``), the last row per id winning."""
    rows = {u.video_id: u for u in uploads}.values()
    return pl.DataFrame(
        {
            "video_id": [u.video_id for u in rows],
            "creator_id": [u.creator_id for u in rows],
            "category_ids": [list(u.category_ids) for u in rows],
            "primary_category": [u.category_ids[0] if u.category_ids else None for u in rows],
            "category_name": [None for _ in rows],
            "caption": [u.caption for u in rows],
            "duration_ms": [u.duration_ms for u in rows],
            "upload_ts": [u.upload_ts for u in rows],
        },
        schema=VIDEO_SCHEMA,
    )


def video_vectors(videos: pl.DataFrame) -> tuple[list[int], np.ndarray]:
    """``VIDEO_SPEC`` vectors of never-watched videos, by the offline feature code itself."""
    at_ms = int(videos["upload_ts"].max()) + 1  # type: ignore[arg-type]
    table = snapshot_videos(_EMPTY_EVENTS, videos, at_ms)
    return table["video_id"].to_list(), table["vector"].to_numpy().reshape(-1, VIDEO_SPEC.dim)


@dataclass
class ColdStartStats:
    added: int = 0  # videos that joined the index
    skipped: int = 0  # already known (replayed upload, or a video of the loaded catalogue)
    bad_entries: int = 0  # stream entries that were not a valid upload
    dead_letters: dict[str, int] = field(default_factory=dict)  # by reason (incl. bad_entries)
    failures: int = 0  # failed reads, embeddings or feature writes
    last_delay_ms: int = -1  # XADD of the last added video → retrievable here


def blocking_read_ms(client: redis.Redis | RedisCluster, block_ms: int) -> int:
    """``block_ms``, shortened to fit inside the client's socket timeout.

    The serving process shares one client whose socket timeout is the hot path's (0.5 s): an
    XREAD blocking longer fails as a timeout, which the cluster client answers by rebuilding
    its view of the cluster, every poll — the idle recommender's largest CPU cost.
    """
    kwargs = (
        client.nodes_manager.connection_kwargs
        if isinstance(client, RedisCluster)
        else client.connection_pool.connection_kwargs
    )
    timeout_s = kwargs.get("socket_timeout")
    if not timeout_s:
        return block_ms
    return max(1, min(block_ms, int(timeout_s * 1000 * BLOCK_SHARE)))


class ColdStart:
    """Tails ``stream`` and feeds new videos to ``retrieval`` and ``store``.

    :meth:`ingest` is the whole job for a list of uploads (tests call it directly);
    :meth:`poll` reads one batch from Redis; :meth:`start` runs ``poll`` in a daemon thread.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        stream: str,
        retrieval: LocalRetrieval,
        embedder: ItemEmbedder,
        store: OnlineStore | None,
        *,
        batch: int = BATCH,
        block_ms: int = BLOCK_MS,
        events: EventsConfig | None = None,
        consumer: str | None = None,
        counted: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """``events``: the dead-letter settings (defaults: ``EventsConfig()``); ``counted``
        (group, reason, n) also reports dead letters to the host's metrics."""
        events = events or EventsConfig()
        self.client = client
        self.stream = stream
        self.retrieval = retrieval
        self.embedder = embedder
        self.store = store
        self.batch = batch
        self.block_ms = blocking_read_ms(client, block_ms)
        self.stats = ColdStartStats()
        self._counted = counted
        self.dead = DeadLetters.of(
            client, events, events.coldstart_group,
            consumer or f"{socket.gethostname()}-{os.getpid()}", self._count_dead,
        )  # fmt: skip
        self.cursor: str | None = None  # last entry id read; None → resolve "$" on first poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the job ---------------------------------------------------------------------------

    def ingest(self, uploads: Sequence[VideoUpload]) -> int:
        """Embed the new ones, write their features, add them; returns how many were added."""
        known = self.retrieval.catalogue.rows(np.asarray([u.video_id for u in uploads]))[1]
        fresh = [u for u, k in zip(uploads, known.tolist(), strict=True) if not k]
        self.stats.skipped += len(uploads) - len(fresh)
        if not fresh:
            return 0
        videos = videos_frame(fresh)
        embeddings = self.embedder.embed_videos(videos)
        self._write_features(videos)
        cats = videos["primary_category"].fill_null(-1).to_numpy()
        added = self.retrieval.add_videos(
            NewVideos(
                video_id=videos["video_id"].to_numpy(),
                creator_id=videos["creator_id"].to_numpy(),
                category=cats,
                upload_ts=videos["upload_ts"].to_numpy(),
                embeddings=np.asarray(embeddings, dtype=np.float32),
            )
        )
        self.stats.added += added
        return added

    def _write_features(self, videos: pl.DataFrame) -> None:
        """Best effort: a video without a vector is still served (hydration degrades)."""
        if self.store is None:
            return
        try:
            ids, matrix = video_vectors(videos)
            self.store.put_many(VIDEO_ENTITY, ids, pack_many(VIDEO_SPEC, matrix, _wall_ms()))
        except Exception:
            self.stats.failures += 1
            log.exception("cold start: feature write failed for %d videos", videos.height)

    def _count_dead(self, reason: str, n: int) -> None:
        self.stats.dead_letters[reason] = self.stats.dead_letters.get(reason, 0) + n
        if self._counted is not None:
            self._counted(self.dead.group, reason, n)

    def _ingest_each(self, uploads: Sequence[tuple[str, dict[Any, Any], VideoUpload]]) -> int:
        """The batch, else one upload at a time: the one that fails alone is dead-lettered."""
        try:
            return self.ingest([u for _, _, u in uploads])
        except Exception:
            log.exception("cold start: a batch of %d failed; adding one by one", len(uploads))
        added = 0
        for entry_id, fields, upload in uploads:
            try:
                added += self.ingest([upload])
            except Exception as exc:
                self.stats.failures += 1
                self.dead.put(self.stream, entry_id, fields, REJECTED, repr(exc))
        return added

    # --- the stream ------------------------------------------------------------------------

    def _start_cursor(self) -> str:
        """The id of the stream's last entry ("$" resolved now, so no entry arriving between
        two blocking reads is missed); "0-0" when the stream is empty or absent."""
        last = self.client.xrevrange(self.stream, count=1)
        return _text(last[0][0]) if last else "0-0"

    def poll(self, block_ms: int | None = None) -> int:
        """One ``XREAD`` after the cursor; ingest what came. Returns videos added."""
        if self.cursor is None:
            self.cursor = self._start_cursor()
        block = self.block_ms if block_ms is None else blocking_read_ms(self.client, block_ms)
        reader = node_client(self.client, self.stream)
        reply: Any = reader.xread({self.stream: self.cursor}, count=self.batch, block=block)
        entries: list[tuple[Any, dict[Any, Any]]] = [e for _, es in reply or [] for e in es]
        if not entries:
            return 0
        uploads: list[tuple[str, dict[Any, Any], VideoUpload]] = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            try:
                uploads.append((entry_id, fields, parse_entry(fields)))
            except (ValueError, ValidationError) as exc:
                self.stats.bad_entries += 1
                log.warning("cold start: dead-lettering entry %s: %s", entry_id, exc)
                reason = exc.reason if isinstance(exc, BadEntry) else UNPARSEABLE
                self.dead.put(self.stream, entry_id, fields, reason, str(exc))
        last_id = _text(entries[-1][0])
        added = self._ingest_each(uploads) if uploads else 0
        # Past the batch only once every entry is in or dead-lettered: a Redis fault while
        # dead-lettering re-reads the batch (uploads already added are skipped as known).
        self.cursor = last_id
        if added:
            self.stats.last_delay_ms = _wall_ms() - int(last_id.split("-")[0])
            log.info("cold start: %d new videos live (%d ms after upload)", added,
                     self.stats.last_delay_ms)  # fmt: skip
        return added

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                self.stats.failures += 1
                log.exception("cold start: poll failed; retrying in %.1f s", BACKOFF_S)
                refresh_slots(self.client)
                self._stop.wait(BACKOFF_S)

    def start(self) -> ColdStart:
        self._thread = threading.Thread(target=self.run, name="vidrec-cold-start", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def launch(
    state: ServingState,
    client: redis.Redis | RedisCluster,
    stream: str,
    retrieval: LocalRetrieval,
    store: OnlineStore | None,
    events: EventsConfig | None = None,
    counted: Callable[[str, str, int], None] | None = None,
) -> ColdStart | None:
    """Start tailing ``stream``; None (logged) when the item tower cannot be loaded: the
    process then serves its loaded catalogue, and new videos wait for the next artefacts."""
    try:
        embedder = load_item_embedder(state)
    except (OSError, ValueError, RuntimeError):
        log.exception("cold start disabled: cannot load the item tower from %s", state.root)
        return None
    return ColdStart(
        client, stream, retrieval, embedder, store, events=events, counted=counted
    ).start()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
