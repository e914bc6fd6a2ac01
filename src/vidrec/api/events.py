"""Engagement-event and upload intake: validate each item, append the valid ones, say why not.

A batch is accepted item by item: one bad event does not sink the other 999, and each
rejection names its index and field. Valid events are appended to Redis Streams partitioned by
user (``<prefix>:<user_id % partitions>``), so one user's events stay ordered; consumers apply
them idempotently by ``event_id``. Durable processing is the consumers' concern.

Within one batch a repeated ``event_id`` is appended once (the repeats are reported, not
rejected: the client's retry logic need not care). Timestamps in seconds, before
``ServingConfig.earliest_event_ms`` or more than :data:`~vidrec.schema.MAX_FUTURE_SKEW_MS` ahead
of the wall clock are rejected (:func:`~vidrec.schema.timestamp_problem`). Authorisation is per
batch: if any event of the request names a ``user_id`` the caller may not act for
(:meth:`~vidrec.security.auth.Principal.may_act_for`), valid or not, the whole request is a 403
naming that event's index and nothing is written. When a target stream is
longer than ``max_stream_len`` the consumers are behind: the whole request is refused with 429 and a
``Retry-After`` (never a silent drop, never a partial write), so clients back off instead of
growing the backlog until the ``MAXLEN`` trim deletes unread events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from pydantic import TypeAdapter, ValidationError
from redis.cluster import RedisCluster

from vidrec.api.errors import ApiError, authorise, check_batch_size, from_validation_error
from vidrec.backends.calls import BlockingCalls
from vidrec.config import ServingConfig
from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.schema import EngagementEvent, EventType, IdField, VideoUpload, timestamp_problem
from vidrec.security.auth import Principal

STREAM_MAXLEN = 1_000_000  # per partition, approximate: a bound, not a retention policy
MAX_STREAM_LEN = 500_000  # per stream: above it, intake answers 429 (consumers are behind)
LENGTH_TTL_S = 0.1  # how long an XLEN answer is trusted: one round trip per ~100 ms, not per call
RETRY_AFTER_S = 1
VIDEOS_STREAM = "videos"  # ``<prefix>:videos``: new catalogue rows, tailed by cold start


def videos_stream(prefix: str) -> str:
    return f"{prefix}:{VIDEOS_STREAM}"


class Overloaded(ApiError):
    """429: a target stream is over its bound; retry after ``retry_after_s``."""

    def __init__(self, stream: str, length: int, limit: int, retry_after_s: int) -> None:
        detail = f"stream {stream} holds {length} events (limit {limit}); retry later"
        super().__init__(429, "backpressure", None, detail)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    detail: str


@dataclass(frozen=True)
class IntakeResult:
    accepted: int
    rejections: list[Rejection]
    duplicates: list[int] = field(default_factory=list)  # indices of repeats of an earlier id

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejections),
            "duplicates": self.duplicates,
            "rejections": [r.__dict__ for r in self.rejections],
        }


def as_batch(payload: Any) -> list[Any]:
    """One event object or a list of them; an empty or oversized batch is an ApiError."""
    items = payload if isinstance(payload, list) else [payload]
    check_batch_size(len(items), "events")
    return items


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


EARLIEST_MS: int = ServingConfig.earliest_event_ms
_USER_ID: TypeAdapter[int] = TypeAdapter(IdField)


def named_user(item: Any) -> int | None:
    """The ``user_id`` an item names, read as the schema reads it ("7" is 7), even when
    another of its fields is invalid; None when it names none."""
    if not isinstance(item, dict):
        return None
    try:
        return _USER_ID.validate_python(item.get("user_id"))
    except ValidationError:
        return None


@dataclass(frozen=True)
class ValidatedBatch:
    valid: list[EngagementEvent]
    rejections: list[Rejection]
    duplicates: list[int]


def validate_events(
    items: Sequence[Any], now_ms: int | None = None, earliest_ms: int = EARLIEST_MS
) -> ValidatedBatch:
    """Schema, timestamps (against ``now_ms``, default the wall clock) and in-batch repeats."""
    now = wall_ms() if now_ms is None else now_ms
    out = ValidatedBatch([], [], [])
    seen: set[str] = set()
    for i, item in enumerate(items):
        try:
            ev = EngagementEvent.model_validate(item)
        except ValidationError as exc:
            err = from_validation_error(exc, ("events", i))
            out.rejections.append(Rejection(i, err.field or "events", err.detail))
            continue
        if (why := timestamp_problem(ev.ts, now, earliest_ms)) is not None:
            out.rejections.append(Rejection(i, f"events[{i}].ts", why))
        elif ev.event_id in seen:
            out.duplicates.append(i)
        else:
            seen.add(ev.event_id)
            out.valid.append(ev)
    return out


class EventWriter(Protocol):
    async def append(self, events: Sequence[EngagementEvent]) -> None: ...

    async def append_video(self, video: VideoUpload) -> None: ...


class StreamLengths:
    """XLEN per stream, trusted for ``ttl_s``: the back-pressure check costs one pipelined
    round trip per ~100 ms however many requests arrive. Called from worker threads."""

    def __init__(self, ttl_s: float = LENGTH_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._known: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get(self, client: redis.Redis | RedisCluster, streams: Sequence[str]) -> dict[str, int]:
        now = self._clock()
        with self._lock:
            fresh = {s: n for s, (n, at) in self._known.items() if now - at < self.ttl_s}
        stale = [s for s in dict.fromkeys(streams) if s not in fresh]
        if stale:
            pipe = client.pipeline(transaction=False)
            for stream in stale:
                pipe.xlen(stream)
            lengths = [int(n) for n in pipe.execute()]
            with self._lock:
                self._known.update({s: (n, now) for s, n in zip(stale, lengths, strict=True)})
            fresh.update(zip(stale, lengths, strict=True))
        return {s: fresh[s] for s in streams}


class RedisStreamEventWriter:
    """XADD to ``<prefix>:<partition>`` in one pipeline per call (standalone or cluster).

    Blocking redis-py in worker threads, bounded and breaker-guarded like every other Redis
    call of the service (``BlockingCalls``): redis.asyncio's cluster client fails under load.
    ``upload`` events are also appended to ``<prefix>:videos`` for cold start. A target stream
    longer than ``max_stream_len`` raises :class:`Overloaded` before anything is written.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        prefix: str,
        partitions: int,
        *,
        timeout_s: float = 0.5,
        max_concurrency: int = 8,
        max_stream_len: int = MAX_STREAM_LEN,
        lengths: StreamLengths | None = None,
        retry_after_s: int = RETRY_AFTER_S,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self.timeout_s = timeout_s
        self.max_stream_len = max_stream_len
        self.retry_after_s = retry_after_s
        self._lengths = lengths or StreamLengths()
        breaker = breaker or CircuitBreaker.of(ServingConfig(), "events")
        self._calls = BlockingCalls(breaker, max_concurrency)

    def stream_for(self, user_id: int) -> str:
        return f"{self.prefix}:{user_id % self.partitions}"

    async def append(self, events: Sequence[EngagementEvent]) -> None:
        entries = []
        for ev in events:
            entries.append((self.stream_for(ev.user_id), "event", ev.model_dump_json()))
            if ev.type is EventType.UPLOAD:
                entries.append((videos_stream(self.prefix), "event", ev.model_dump_json()))
        await self._xadd(entries)

    async def append_video(self, video: VideoUpload) -> None:
        ev = video.as_event()
        await self._xadd([
            (videos_stream(self.prefix), "video", video.model_dump_json()),
            (self.stream_for(ev.user_id), "event", ev.model_dump_json()),
        ])  # fmt: skip

    def _check_lengths(self, streams: Sequence[str]) -> None:
        for stream, length in self._lengths.get(self.client, streams).items():
            if length > self.max_stream_len:
                raise Overloaded(stream, length, self.max_stream_len, self.retry_after_s)

    async def _xadd(self, entries: Sequence[tuple[str, str, str]]) -> None:
        def write() -> None:
            self._check_lengths([stream for stream, _, _ in entries])
            pipe = self.client.pipeline(transaction=False)
            for stream, key, value in entries:
                pipe.xadd(stream, {key: value}, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.execute()

        await self._calls.run(write, self.timeout_s)


class EventIntake:
    """Validate + append; the transports only parse bytes and render :class:`IntakeResult`."""

    def __init__(
        self,
        writer: EventWriter,
        clock_ms: Callable[[], int] = wall_ms,
        earliest_ms: int = EARLIEST_MS,
    ) -> None:
        self.writer = writer
        self.clock_ms = clock_ms
        self.earliest_ms = earliest_ms

    async def engagement(self, payload: Any, principal: Principal) -> IntakeResult:
        """A 403 (nothing written) when any event names a user ``principal`` may not act
        for; else the valid events appended and the others reported."""
        items = as_batch(payload)
        for i, item in enumerate(items):
            authorise(principal, named_user(item), f"events[{i}].user_id")
        batch = validate_events(items, self.clock_ms(), self.earliest_ms)
        if batch.valid:
            await self.writer.append(batch.valid)
        return IntakeResult(len(batch.valid), batch.rejections, batch.duplicates)

    async def video(self, payload: Any, principal: Principal) -> IntakeResult:
        """One upload, announced as an ``upload`` event of its creator: the caller must be
        allowed to act for ``creator_id``."""
        try:
            video = VideoUpload.model_validate(payload)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        why = timestamp_problem(video.upload_ts, self.clock_ms(), self.earliest_ms)
        if why is not None:
            raise ApiError(400, "invalid", "upload_ts", why)
        authorise(principal, video.creator_id, "creator_id")
        await self.writer.append_video(video)
        return IntakeResult(1, [])


def unavailable(exc: DependencyError) -> ApiError:
    """A dependency fault on a write path: 503 (the client retries; events are idempotent)."""
    return ApiError(503, exc.reason, None, str(exc))
