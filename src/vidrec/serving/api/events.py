"""Engagement-event and upload intake: validate each item, append the valid ones, say why not.

A batch is accepted item by item: one bad event does not sink the other 999, and each
rejection names its index and field. Valid events are appended to Redis Streams partitioned by
user (``<prefix>:<user_id % partitions>``), so one user's events stay ordered; consumers apply
them idempotently by ``event_id``. Durable processing is the consumers' concern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from pydantic import ValidationError
from redis.cluster import RedisCluster

from vidrec.pipeline.base import DependencyError
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.schema import EngagementEvent, VideoUpload
from vidrec.serving.api.errors import ApiError, check_batch_size, from_validation_error
from vidrec.serving.calls import BlockingCalls

STREAM_MAXLEN = 1_000_000  # per partition, approximate: a bound, not a retention policy


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    detail: str


@dataclass(frozen=True)
class IntakeResult:
    accepted: int
    rejections: list[Rejection]

    def body(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejections),
            "rejections": [r.__dict__ for r in self.rejections],
        }


def as_batch(payload: Any) -> list[Any]:
    """One event object or a list of them; an empty or oversized batch is an ApiError."""
    items = payload if isinstance(payload, list) else [payload]
    check_batch_size(len(items), "events")
    return items


def validate_events(items: Sequence[Any]) -> tuple[list[EngagementEvent], list[Rejection]]:
    valid: list[EngagementEvent] = []
    rejected: list[Rejection] = []
    for i, item in enumerate(items):
        try:
            valid.append(EngagementEvent.model_validate(item))
        except ValidationError as exc:
            err = from_validation_error(exc, ("events", i))
            rejected.append(Rejection(i, err.field or "events", err.detail))
    return valid, rejected


class EventWriter(Protocol):
    async def append(self, events: Sequence[EngagementEvent]) -> None: ...

    async def append_video(self, video: VideoUpload) -> None: ...


class RedisStreamEventWriter:
    """XADD to ``<prefix>:<partition>`` in one pipeline per call (standalone or cluster).

    Blocking redis-py in worker threads, bounded and breaker-guarded like every other Redis
    call of the service (``BlockingCalls``): redis.asyncio's cluster client fails under load.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        prefix: str,
        partitions: int,
        *,
        timeout_s: float = 0.5,
        max_concurrency: int = 8,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self.timeout_s = timeout_s
        self._calls = BlockingCalls(CircuitBreaker(5, 5.0), max_concurrency)

    def stream_for(self, user_id: int) -> str:
        return f"{self.prefix}:{user_id % self.partitions}"

    async def append(self, events: Sequence[EngagementEvent]) -> None:
        entries = [(self.stream_for(ev.user_id), "event", ev.model_dump_json()) for ev in events]
        await self._xadd(entries)

    async def append_video(self, video: VideoUpload) -> None:
        ev = video.as_event()
        await self._xadd([
            (f"{self.prefix}:videos", "video", video.model_dump_json()),
            (self.stream_for(ev.user_id), "event", ev.model_dump_json()),
        ])  # fmt: skip

    async def _xadd(self, entries: Sequence[tuple[str, str, str]]) -> None:
        def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for stream, key, value in entries:
                pipe.xadd(stream, {key: value}, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.execute()

        await self._calls.run(write, self.timeout_s)


class EventIntake:
    """Validate + append; the transports only parse bytes and render :class:`IntakeResult`."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer

    async def engagement(self, payload: Any) -> IntakeResult:
        valid, rejected = validate_events(as_batch(payload))
        if valid:
            await self.writer.append(valid)
        return IntakeResult(len(valid), rejected)

    async def video(self, payload: Any) -> IntakeResult:
        try:
            video = VideoUpload.model_validate(payload)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        await self.writer.append_video(video)
        return IntakeResult(1, [])


def unavailable(exc: DependencyError) -> ApiError:
    """A dependency fault on a write path: 503 (the client retries; events are idempotent)."""
    return ApiError(503, exc.reason, None, str(exc))
