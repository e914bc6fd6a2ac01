"""Real-time session state of a user: what the request's filters and sources need right now.

Stored next to the user's feature vector: the key ``key_for(SESSION_ENTITY, user_id, n)`` has
the same ``{b<k>}`` hash tag as the user vector key, so both live in one Redis Cluster slot
and a request reads them with ONE MGET.

Encoding (little endian), versioned so a reader never misreads a layout it does not know::

    magic "VRSS" | version u16 | pad u16 | updated_ms i64 | session_depth u32
    | 5 x count u32 | int64 ids (recent, seen, ni videos, ni creators, blocked)
    | region len u8 + utf8 | device len u8 + utf8
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from vidrec.config import FeatureConfig
from vidrec.contracts.keys import SESSION_ENTITY as SESSION_ENTITY
from vidrec.features.codec import CorruptValue
from vidrec.features.spec import SESSION_WINDOW_MS
from vidrec.features.stores import OnlineStore
from vidrec.schema import EventType

SESSION_MAGIC = b"VRSS"
SESSION_VERSION = 1
SEEN_CAP = 500
"""Seen videos kept per user (most recent first): enough to de-duplicate a day of feeds."""

_HEADER = struct.Struct("<4sHHqI5I")
_ID_FIELDS = (
    "recent_watches",
    "seen",
    "not_interested_videos",
    "not_interested_creators",
    "blocked_creators",
)


def _newest_first(new: Iterable[int], old: Sequence[int], cap: int) -> tuple[int, ...]:
    """``new`` (newest first) in front of ``old`` without duplicates, capped."""
    out = list(dict.fromkeys([*new, *old]))
    return tuple(out[:cap])


@dataclass(frozen=True)
class SessionState:
    """One user's session. Id tuples are most recent first; sets are capped by their writer."""

    recent_watches: tuple[int, ...] = ()
    seen: tuple[int, ...] = ()
    not_interested_videos: frozenset[int] = field(default_factory=frozenset)
    not_interested_creators: frozenset[int] = field(default_factory=frozenset)
    blocked_creators: frozenset[int] = field(default_factory=frozenset)
    session_depth: int = 0
    updated_ms: int = 0
    region: str = ""  # last region the user was seen in ("" unknown)
    device: str = ""  # last device ("" unknown)

    def watched(self, video_id: int, ts: int, history_len: int) -> SessionState:
        recent = _newest_first([video_id], self.recent_watches, history_len)
        return replace(self, recent_watches=recent, updated_ms=max(self.updated_ms, ts))

    def impressed(self, video_ids: Sequence[int], ts: int, cap: int = SEEN_CAP) -> SessionState:
        """Mark videos seen; a gap longer than the session window starts a new session."""
        fresh = ts - self.updated_ms > SESSION_WINDOW_MS
        depth = (0 if fresh else self.session_depth) + len(video_ids)
        return replace(
            self,
            seen=_newest_first(reversed(video_ids), self.seen, cap),
            session_depth=depth,
            updated_ms=max(self.updated_ms, ts),
        )

    def not_interested(self, video_id: int, creator_id: int, ts: int) -> SessionState:
        creators = self.not_interested_creators | ({creator_id} if creator_id >= 0 else set())
        return replace(
            self,
            not_interested_videos=self.not_interested_videos | {video_id},
            not_interested_creators=frozenset(creators),
            updated_ms=max(self.updated_ms, ts),
        )

    def encode(self) -> bytes:
        ids = [np.asarray(sorted(v) if isinstance(v, frozenset) else v, dtype="<i8")
               for v in (getattr(self, name) for name in _ID_FIELDS)]  # fmt: skip
        region, device = self.region.encode(), self.device.encode()
        if len(region) > 255 or len(device) > 255:
            raise ValueError("SessionState.region/device: longer than 255 bytes")
        head = _HEADER.pack(
            SESSION_MAGIC,
            SESSION_VERSION,
            0,
            self.updated_ms,
            self.session_depth,
            *(a.size for a in ids),
        )
        tail = bytes([len(region)]) + region + bytes([len(device)]) + device
        return head + np.concatenate(ids).tobytes() + tail

    @classmethod
    def decode(cls, blob: bytes) -> SessionState:
        """Parse :meth:`encode` output; anything else raises :class:`CorruptValue`."""
        if len(blob) < _HEADER.size or blob[:4] != SESSION_MAGIC:
            raise CorruptValue(f"session blob: bad magic {blob[:4]!r} or too short")
        _, version, _, updated, depth, *counts = _HEADER.unpack_from(blob)
        if version != SESSION_VERSION:
            raise CorruptValue(f"session blob: unknown version {version} (reader knows 1)")
        end = _HEADER.size + 8 * sum(counts)
        if len(blob) < end + 2:
            raise CorruptValue(f"session blob: {len(blob)} bytes, truncated")
        flat = np.frombuffer(blob, dtype="<i8", count=sum(counts), offset=_HEADER.size).tolist()
        parts, start = [], 0
        for n in counts:
            parts.append(flat[start : start + n])
            start += n
        region_len = blob[end]
        device_at = end + 1 + region_len
        if len(blob) < device_at + 1 or len(blob) != device_at + 1 + blob[device_at]:
            raise CorruptValue(f"session blob: {len(blob)} bytes, bad region/device block")
        return cls(
            recent_watches=tuple(parts[0]),
            seen=tuple(parts[1]),
            not_interested_videos=frozenset(parts[2]),
            not_interested_creators=frozenset(parts[3]),
            blocked_creators=frozenset(parts[4]),
            session_depth=depth,
            updated_ms=updated,
            region=blob[end + 1 : device_at].decode(),
            device=blob[device_at + 1 :].decode(),
        )


class SessionStore:
    """Session states in an online store, under :data:`SESSION_ENTITY` keys.

    ``update`` is read-modify-write, not atomic: the events processor owns each user's
    partition (one consumer per user), so two writers never race on one user.
    """

    def __init__(self, store: OnlineStore) -> None:
        self.store = store

    def get(self, user_id: int) -> SessionState:
        """The user's state; an empty one when none is stored."""
        (blob,) = self.store.get_many(SESSION_ENTITY, [user_id])
        return SessionState() if blob is None else SessionState.decode(blob)

    def put(self, user_id: int, state: SessionState) -> None:
        self.store.put_many(SESSION_ENTITY, [user_id], [state.encode()])

    def put_many(self, states: dict[int, SessionState], batch_size: int = 500) -> int:
        ids = list(states)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            self.store.put_many(SESSION_ENTITY, chunk, [states[i].encode() for i in chunk])
        return len(ids)

    def update(self, user_id: int, fn: Callable[[SessionState], SessionState]) -> SessionState:
        state = fn(self.get(user_id))
        self.put(user_id, state)
        return state


def _last_ids(events: pl.DataFrame, kind: EventType, cap: int, name: str) -> pl.DataFrame:
    """Per user: distinct video ids of ``kind`` events, most recent first, at most ``cap``."""
    return (
        events.filter(pl.col("type") == kind.value)
        .sort("ts", descending=True, maintain_order=True)
        .unique(["user_id", "video_id"], keep="first", maintain_order=True)
        .group_by("user_id")
        .agg(pl.col("video_id").head(cap).alias(name))
    )


def from_events(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    at_ms: int,
    users: pl.DataFrame | None = None,
    history_len: int = FeatureConfig().history_len,
    seen_cap: int = SEEN_CAP,
) -> dict[int, SessionState]:
    """Session state of every user as of ``at_ms`` (events with ``ts < at_ms``).

    Users of ``users`` (with ``region``/``device`` columns) without events get an empty
    session carrying their region and device; the log's latest region/device wins otherwise.
    """
    log = events.filter(pl.col("ts") < at_ms)
    creators = videos.select("video_id", "creator_id")
    ni = log.filter(pl.col("type") == EventType.NOT_INTERESTED.value).join(
        creators, on="video_id", how="left"
    )
    per_user = [
        _last_ids(log, EventType.WATCH, history_len, "recent_watches"),
        _last_ids(log, EventType.IMPRESSION, seen_cap, "seen"),
        ni.group_by("user_id").agg(
            pl.col("video_id").unique().alias("not_interested_videos"),
            pl.col("creator_id").drop_nulls().unique().alias("not_interested_creators"),
        ),
        log.group_by("user_id").agg(
            pl.col("ts").max().alias("updated_ms"),
            pl.col("region").drop_nulls().last().alias("region"),
            pl.col("device").drop_nulls().last().alias("device"),
            (
                (pl.col("type") == EventType.IMPRESSION.value)
                & (pl.col("ts") >= at_ms - SESSION_WINDOW_MS)
            )
            .sum()
            .alias("session_depth"),
        ),
    ]
    if users is not None:
        base = users.select("user_id", pl.col("region").alias("_r"), pl.col("device").alias("_d"))
        per_user.append(base)
    table = per_user[0]
    for other in per_user[1:]:
        table = table.join(other, on="user_id", how="full", coalesce=True)
    if users is not None:
        table = table.with_columns(
            pl.coalesce("region", "_r").alias("region"), pl.coalesce("device", "_d").alias("device")
        )
    return {row["user_id"]: _state(row) for row in table.iter_rows(named=True)}


def _state(row: dict[str, object]) -> SessionState:
    def ids(name: str) -> list[int]:
        value = row.get(name)
        return list(value) if isinstance(value, list) else []

    return SessionState(
        recent_watches=tuple(ids("recent_watches")),
        seen=tuple(ids("seen")),
        not_interested_videos=frozenset(ids("not_interested_videos")),
        not_interested_creators=frozenset(ids("not_interested_creators")),
        session_depth=int(row.get("session_depth") or 0),  # type: ignore[call-overload]
        updated_ms=int(row.get("updated_ms") or 0),  # type: ignore[call-overload]
        region=str(row.get("region") or ""),
        device=str(row.get("device") or ""),
    )
