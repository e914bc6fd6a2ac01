"""Dead letters: stream entries a consumer cannot apply, set aside so that it moves on.

An entry that can never be applied (not JSON, a missing field, an id no table can hold) would
otherwise stop an at-least-once consumer forever: it fails, stays pending, is re-read, fails
again. Every stream consumer — the event processor, the lake writer, cold start — hands such
an entry to :class:`DeadLetters` and then acknowledges it (or moves its cursor past it).

A dead letter is an entry of ``dead:{dl:<group>}`` (:func:`~vidrec.contracts.keys.
dead_letter_stream`, MAXLEN ~ ``events.dead_letter_maxlen``) holding the original fields as
``f:<name>`` and ``dl:source``, ``dl:id``, ``dl:group``, ``dl:consumer``, ``dl:reason``,
``dl:error``. One Lua script sets a marker next to it and appends only if the marker was new,
so a redelivered entry, or one that several cold-start replicas all read, is written once.
:func:`replay` appends dead letters back onto their source stream (after a fix).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import redis
from redis.cluster import RedisCluster

from vidrec.config import EventsConfig
from vidrec.contracts.keys import dead_letter_marker, dead_letter_stream

Client = redis.Redis | RedisCluster

# Reasons (the metric's ``reason`` label: few, fixed; the details go to ``dl:error``).
UNPARSEABLE = "unparseable"  # not JSON, a missing, extra or mistyped field
OUT_OF_RANGE = "out_of_range"  # a value its table column cannot hold (an id >= 2**63)
MISSING = "missing"  # no payload: trimmed before it was read, or not an event entry
REJECTED = "rejected"  # applying or writing this entry alone failed
REASONS = (UNPARSEABLE, OUT_OF_RANGE, MISSING, REJECTED)

FIELD = "f:"  # original field ``name`` is kept as ``f:name``
META = "dl:"
MAX_ERROR_CHARS = 500

_PUT = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
  return 1
end
return 0
"""


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


_BITS: dict[type[pl.DataType], int] = {pl.Int8: 8, pl.Int16: 16, pl.Int32: 32, pl.Int64: 64,
                                      pl.UInt8: 8, pl.UInt16: 16, pl.UInt32: 32,
                                      pl.UInt64: 64}  # fmt: skip


def _int_bounds(dtype: pl.DataType) -> tuple[int, int] | None:
    if not dtype.is_integer():
        return None
    bits = _BITS.get(type(dtype), 64)
    if dtype.is_signed_integer():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def out_of_range(values: Mapping[str, Any], schema: Mapping[str, pl.DataType]) -> str | None:
    """The first integer (or list-of-integer) value its ``schema`` column cannot hold, named;
    None when all fit. Checked per entry before a batch is built, so one overflowing id
    cannot fail the batch's table."""
    for name, dtype in schema.items():
        inner = dtype.inner if isinstance(dtype, pl.List) else dtype
        bounds = _int_bounds(inner)  # type: ignore[arg-type]
        value = values.get(name)
        if bounds is None or value is None:
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, int) and not bounds[0] <= v <= bounds[1]:
                return f"{name}={v} outside {inner} [{bounds[0]}, {bounds[1]}]"
    return None


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter, as :func:`read` returns it."""

    id: str  # in the dead-letter stream
    source: str  # the stream it came from
    source_id: str
    group: str
    consumer: str
    reason: str
    error: str
    fields: dict[str, str]  # the original entry's fields


class DeadLetters:
    """What one consumer of ``group`` dead-letters; ``counted(reason, n)`` feeds its metric."""

    def __init__(
        self,
        client: Client,
        group: str,
        consumer: str,
        *,
        maxlen: int,
        seen_ttl_s: int,
        counted: Callable[[str, int], None] | None = None,
    ) -> None:
        self.client = client
        self.group = group
        self.consumer = consumer
        self.stream = dead_letter_stream(group)
        self.maxlen = maxlen
        self.seen_ttl_s = seen_ttl_s
        self.counted = counted
        self._put = client.register_script(_PUT)

    @classmethod
    def of(
        cls,
        client: Client,
        cfg: EventsConfig,
        group: str,
        consumer: str,
        counted: Callable[[str, int], None] | None = None,
    ) -> DeadLetters:
        """Bounded by ``cfg.dead_letter_maxlen``; markers live as long as event-id markers
        (``cfg.dedupe_ttl_s``), i.e. longer than any redelivery."""
        return cls(client, group, consumer, maxlen=cfg.dead_letter_maxlen,
                   seen_ttl_s=cfg.dedupe_ttl_s, counted=counted)  # fmt: skip

    def put(
        self,
        source: str,
        entry_id: str,
        fields: Mapping[Any, Any] | None,
        reason: str,
        error: str,
    ) -> bool:
        """Dead-letter one entry; False when it was dead-lettered before (a redelivery).
        Raises on a Redis fault: the caller must then NOT acknowledge the entry."""
        meta = {"source": source, "id": entry_id, "group": self.group,
                "consumer": self.consumer, "reason": reason,
                "error": error[:MAX_ERROR_CHARS]}  # fmt: skip
        args: list[Any] = [self.seen_ttl_s, self.maxlen]
        for name, value in (fields or {}).items():
            args += [FIELD + _text(name), value]
        for name, value in meta.items():
            args += [META + name, value]
        keys = [self.stream, dead_letter_marker(self.group, source, entry_id)]
        fresh = bool(self._put(keys=keys, args=args))
        if self.counted is not None:
            self.counted(reason, 1)  # counted on redelivery too: this consumer set it aside
        return fresh


def read(client: Client, group: str, count: int = 100) -> list[DeadLetter]:
    """The oldest ``count`` dead letters of ``group``."""
    out = []
    entries: list[tuple[Any, dict[Any, Any]]] = client.xrange(  # type: ignore[assignment]
        dead_letter_stream(group), count=count
    )
    for entry_id, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        meta = {k[len(META) :]: v for k, v in fields.items() if k.startswith(META)}
        original = {k[len(FIELD) :]: v for k, v in fields.items() if k.startswith(FIELD)}
        out.append(
            DeadLetter(
                id=_text(entry_id), source=meta.get("source", ""), source_id=meta.get("id", ""),
                group=meta.get("group", group), consumer=meta.get("consumer", ""),
                reason=meta.get("reason", ""), error=meta.get("error", ""), fields=original,
            )
        )  # fmt: skip
    return out


def replay(client: Client, letters: Sequence[DeadLetter]) -> int:
    """Append each letter's original fields to its source stream as a new entry, then delete
    the letter. Every group on that stream reads it again (the processor's event-id markers
    make that a no-op for events it applied; lake readers dedupe by ``event_id``)."""
    n = 0
    for letter in letters:
        if not letter.source or not letter.fields:
            continue  # nothing to replay (an entry trimmed before it was read)
        client.xadd(letter.source, letter.fields)  # type: ignore[arg-type]
        client.xdel(dead_letter_stream(letter.group), letter.id)
        n += 1
    return n
