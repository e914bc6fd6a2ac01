"""The lake writer: engagement streams → Parquet partitioned by event hour, exactly once.

Its own consumer group (``lake``). Events are buffered, then written as
``<lake>/date=YYYY-MM-DD/hour=HH/part-<partition>-<first id>-<last id>.parquet`` (columns
exactly ``EVENT_SCHEMA``), each file atomically (temp file, rename), and only THEN XACKed. A
crash after the rename and before the XACK leaves those entries pending: on restart the
writer finds each pending entry in the file whose stream-id range covers it (names carry the
range, so this is a directory listing plus one column read) and only acks it. A batch that
is written again gets the same name from the same id range and replaces the file. Either
way the lake holds every accepted entry once; :func:`vidrec.events.event_log.read_events`
reads it (``vidrec pipeline run --events <lake>``). Two entries with one ``event_id`` (a
client retry) in one file are written once; across files, readers dedupe by ``event_id``.

An entry that is not a valid event, or holds a value ``EVENT_SCHEMA`` cannot (``user_id``
2**70), is dead-lettered (:mod:`vidrec.contracts.dead_letters`) and acked when read, never
buffered; should a batch's file still fail on some entry, each entry is tried alone, the
failing ones dead-lettered and the rest written. One bad entry never stops the writer.

Privacy (:mod:`vidrec.security`): user ids are written as pseudonyms (``VIDREC_EVENTS__ID_SALT``;
uploads keep the creator id), files are encrypted with ``VIDREC_EVENTS__LAKE_KEY``, events of
users with a tombstone are not written (their entries are still acked), and every flush copies
the Redis tombstones to ``<lake>/_tombstones/`` for training.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import redis

from vidrec.config import Config
from vidrec.contracts.dead_letters import REJECTED
from vidrec.events.event_log import read_event_ids, write_events
from vidrec.events.processor import (
    DEPENDENCY_FAULTS,
    EventObserver,
    Tally,
    dead_letters_of,
    run_until,
)
from vidrec.events.streams import Client, Entry, GroupReader, set_aside
from vidrec.schema import EVENT_SCHEMA, EngagementEvent, EventType
from vidrec.security.forget import LakeTombstones, forgotten_among, tombstones_in_redis
from vidrec.security.lake_crypto import LakeCrypto
from vidrec.security.pseudonym import Pseudonymizer


def partition_dir(lake: Path, ts_ms: int) -> Path:
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return lake / f"date={t:%Y-%m-%d}" / f"hour={t:%H}"


def _file_id(entry_id: str) -> str:
    return entry_id.replace("-", "_")


def _id_key(file_id: str) -> tuple[int, int]:
    ms, _, seq = file_id.partition("_")
    return int(ms), int(seq or 0)


def file_name(stream: str, first_id: str, last_id: str) -> str:
    """Deterministic from the stream partition and the id range it holds."""
    return f"part-{stream.rsplit(':', 1)[-1]}-{_file_id(first_id)}-{_file_id(last_id)}.parquet"


def to_frame(
    events: Sequence[EngagementEvent], pseudonyms: Pseudonymizer | None = None
) -> pl.DataFrame:
    """Events as an ``EVENT_SCHEMA`` table (one row per distinct ``event_id``), user ids
    replaced by their pseudonyms (except an upload's: the creator, catalogue data)."""
    rows = [ev.model_dump(mode="json") for ev in events]
    if pseudonyms is not None and pseudonyms.enabled:
        for row, ev in zip(rows, events, strict=True):
            if ev.type is not EventType.UPLOAD:
                row["user_id"] = pseudonyms.user(ev.user_id)
    frame = pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")
    return frame.unique("event_id", keep="first", maintain_order=True)


class LakeWriter:
    def __init__(
        self,
        client: Client,
        cfg: Config,
        lake: Path,
        *,
        consumer: str | None = None,
        group: str | None = None,
        count: int | None = None,
        block_ms: int | None = None,
        claim_min_idle_ms: int | None = None,
        max_events: int | None = None,
        max_age_s: float | None = None,
        observer: EventObserver | None = None,
    ) -> None:
        """Settings not given come from ``cfg.events``."""
        e = cfg.events
        self.reader = GroupReader.on_event_streams(
            client, cfg, group or e.lake_group, consumer,
            count=count, block_ms=block_ms, claim_min_idle_ms=claim_min_idle_ms,
        )  # fmt: skip
        self.lake = lake
        self.client = client
        # Privacy (vidrec.security): pseudonymous ids, encrypted files, tombstones honoured.
        self.pseudonyms = Pseudonymizer(cfg.events.id_salt)
        self.crypto = LakeCrypto.from_secret(cfg.events.lake_key)
        self.tombstone_hash = cfg.events.tombstone_key
        self.tombstones = LakeTombstones(lake)
        self.forgotten_dropped = 0  # events of forgotten users not written
        self.max_events = e.lake_max_events if max_events is None else max_events
        self.max_age_s = e.lake_max_age_s if max_age_s is None else max_age_s
        self.observer: EventObserver = observer or Tally()
        self.dead = dead_letters_of(client, cfg, self.reader, self.observer)
        self.buffer: list[Entry] = []
        self._oldest = 0.0
        self._recovered = False

    def write(self, entries: Sequence[Entry]) -> list[Path]:
        """Write ``entries`` as one file per (stream, event hour); no XACK."""
        groups: dict[tuple[str, Path], list[Entry]] = {}
        for entry in entries:
            if entry.event is not None:
                key = (entry.stream, partition_dir(self.lake, entry.event.ts))
                groups.setdefault(key, []).append(entry)
        gone = self._forgotten(entries)
        paths = []
        for (stream, folder), group in groups.items():
            # The file name covers every entry of the group (recovery finds them by range);
            # forgotten users' events are simply not in it.
            ids = sorted((e.id for e in group), key=lambda i: _id_key(_file_id(i)))
            kept = [e for e in group if not self._drop(e, gone)]
            self.forgotten_dropped += len(group) - len(kept)
            path = folder / file_name(stream, ids[0], ids[-1])
            try:
                paths.append(self._write_file(kept, path))
            except DEPENDENCY_FAULTS:
                raise
            except Exception:  # some entry the table cannot take: write the others
                paths.append(self._write_file(self._isolate(kept), path))
        return paths

    def _write_file(self, entries: Sequence[Entry], path: Path) -> Path:
        frame = to_frame([e.event for e in entries if e.event is not None], self.pseudonyms)
        return write_events(frame, path, crypto=self.crypto, user_ids=self.id_label)

    def _isolate(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries that convert and write alone (in memory); the others dead-lettered.
        Parsing already rejects what ``EVENT_SCHEMA`` cannot hold: this is the net for what
        it did not foresee, so one entry never costs its batch, nor stops the writer."""
        good = []
        for entry in entries:
            try:
                frame = to_frame([entry.event] if entry.event is not None else [], self.pseudonyms)
                frame.select(list(EVENT_SCHEMA)).write_parquet(io.BytesIO())
            except Exception as exc:
                set_aside(self.dead, entry, REJECTED, repr(exc))
            else:
                good.append(entry)
        return good

    @property
    def id_label(self) -> str:
        return self.pseudonyms.label()

    def _forgotten(self, entries: Sequence[Entry]) -> set[int]:
        ids = {self.pseudonyms.user(e.event.user_id) for e in entries if e.event is not None}
        return forgotten_among(self.client, self.tombstone_hash, ids)

    def _drop(self, entry: Entry, gone: set[int]) -> bool:
        ev = entry.event
        if ev is None or ev.type is EventType.UPLOAD or not gone:
            return False
        return self.pseudonyms.user(ev.user_id) in gone

    def sync_tombstones(self) -> int:
        """Copy Redis tombstones into ``<lake>/_tombstones`` (what training reads)."""
        return self.tombstones.write(tombstones_in_redis(self.client, self.tombstone_hash))

    def written(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries already in a lake file (written before a crash, never acked)."""
        found: list[Entry] = []
        cache: dict[Path, set[str]] = {}
        gone = self._forgotten(entries)
        for entry in entries:
            if entry.event is None:
                continue
            suffix = entry.stream.rsplit(":", 1)[-1]
            key = _id_key(_file_id(entry.id))
            for path in partition_dir(self.lake, entry.event.ts).glob(f"part-{suffix}-*.parquet"):
                first, last = path.stem.split("-")[2:4]
                if _id_key(first) <= key <= _id_key(last):
                    if path not in cache:
                        cache[path] = read_event_ids(path, self.crypto)
                    # A forgotten user's entry was dropped from its file on purpose.
                    if entry.event.event_id in cache[path] or self._drop(entry, gone):
                        found.append(entry)
                        break
        return found

    def flush(self) -> int:
        """Write the buffer, then ack it; the number of entries flushed."""
        entries, self.buffer = self.buffer, []
        self.sync_tombstones()
        if entries:
            self.write(entries)
            self.reader.ack(entries)
            self.observer.processed(len(entries))
        return len(entries)

    def _buffer(self, entries: Sequence[Entry]) -> int:
        """Buffer the valid entries; dead-letter and ack the invalid ones at once (they would
        fail the batch's table, or are not events at all)."""
        invalid = [e for e in entries if e.event is None]
        for entry in invalid:
            set_aside(self.dead, entry)
        self.reader.ack(invalid)
        if entries and not self.buffer:
            self._oldest = time.monotonic()
        self.buffer.extend(e for e in entries if e.event is not None)
        return len(invalid)

    def step(self) -> int:
        """Recover (first call) or read into the buffer; flush when full or old enough."""
        if not self._recovered:
            self.reader.ensure_groups()
            pending = self.reader.recover()
            done = self.written(pending)
            self.reader.ack(done)
            done_ids = {(e.stream, e.id) for e in done}
            self.buffer = []
            invalid = self._buffer([e for e in pending if (e.stream, e.id) not in done_ids])
            self._recovered = True
            return self.flush() + len(done) + invalid
        entries = self.reader.read()
        self._buffer(entries)
        old = self.buffer and time.monotonic() - self._oldest >= self.max_age_s
        if len(self.buffer) >= self.max_events or old:
            self.flush()
        return len(entries)

    def _after_fault(self) -> None:
        self.observer.failed(1)
        self.buffer, self._recovered = [], False  # the entries stay pending: reread

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop``; then flush what is buffered. Redis faults back off."""
        run_until(stop, self.step, self._after_fault, (redis.RedisError, OSError))
        try:
            self.flush()
        except (redis.RedisError, OSError):
            self.observer.failed(1)  # left pending: the next writer recovers them
