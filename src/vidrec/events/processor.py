"""The real-time feature processor: engagement streams → sessions, counters, trending.

One consumer of group ``realtime`` over every partition. Each batch is applied, then XACKed.
Every effect of an event is an atomic unit with its own ``event_id`` marker in the same slot
(session: :mod:`.sessions`; video counters: :mod:`.counters`; region trending:
:mod:`.trending`), so re-applying an event — a redelivery after a crash between apply and
XACK, a claimed entry, a client retry with the same ``event_id`` — changes nothing, and a
crash halfway through an event's units completes the missing ones on replay. At-least-once
delivery + idempotent units = effectively once.

Redis faults never end the process: they are counted, the batch stays pending, and after a
backoff the consumer re-reads its own pending entries first.
An entry that cannot be applied (invalid, or failing alone) is dead-lettered
(:mod:`vidrec.contracts.dead_letters`) and acked with its batch: it never stops the consumer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis
from redis.cluster import RedisCluster

from vidrec.config import Config
from vidrec.contracts.catalogue import Catalogue
from vidrec.contracts.dead_letters import REJECTED, DeadLetters
from vidrec.contracts.keys import request_variant_key
from vidrec.contracts.trending import Decay
from vidrec.events.counters import CounterWriter
from vidrec.events.creators import CreatorLookup
from vidrec.events.sessions import SESSION_TYPES, SessionConflict, SessionWriter
from vidrec.events.streams import Client, Entry, GroupReader, set_aside
from vidrec.events.trending import TrendingWriter
from vidrec.schema import EngagementEvent, EventType
from vidrec.security.forget import forgotten_among
from vidrec.security.pseudonym import Pseudonymizer


class EventObserver(Protocol):
    """What a consumer reports; :mod:`vidrec.events.processor_metrics` turns it into Prometheus."""

    def processed(self, n: int) -> None: ...

    def duplicates(self, n: int) -> None: ...

    def failed(self, n: int) -> None: ...

    def dead_lettered(self, group: str, reason: str, n: int) -> None: ...

    def lag(self, seconds: Sequence[float]) -> None: ...

    def engagement(self, variant: str, kind: str, watch_s: float) -> None: ...


@dataclass
class Tally:
    """An :class:`EventObserver` that just counts (tests, and the default)."""

    n_processed: int = 0
    n_duplicates: int = 0
    n_failed: int = 0
    n_lag: int = 0
    dead: dict[tuple[str, str], int] = field(default_factory=dict)  # (group, reason) -> n
    by_variant: dict[tuple[str, str], int] = field(default_factory=dict)

    def processed(self, n: int) -> None:
        self.n_processed += n

    def duplicates(self, n: int) -> None:
        self.n_duplicates += n

    def failed(self, n: int) -> None:
        self.n_failed += n

    def dead_lettered(self, group: str, reason: str, n: int) -> None:
        self.dead[(group, reason)] = self.dead.get((group, reason), 0) + n

    def lag(self, seconds: Sequence[float]) -> None:
        self.n_lag += len(seconds)

    def engagement(self, variant: str, kind: str, watch_s: float) -> None:
        key = (variant, kind)
        self.by_variant[key] = self.by_variant.get(key, 0) + 1


ATTRIBUTED = frozenset({EventType.IMPRESSION, EventType.CLICK, EventType.WATCH})


def mget_any(client: Client, keys: Sequence[str]) -> list[bytes | None]:
    """MGET on standalone Redis; one MGET per slot on a cluster (keys span slots)."""
    if isinstance(client, RedisCluster):
        return list(client.mget_nonatomic(keys))
    return list(client.mget(keys))  # type: ignore[arg-type]


def dead_letters_of(
    client: Client, cfg: Config, reader: GroupReader, observer: EventObserver
) -> DeadLetters:
    """The dead letters of ``reader``'s group, counted by ``observer``."""
    group = reader.group
    return DeadLetters.of(client, cfg.events, group, reader.consumer,
                          lambda reason, n: observer.dead_lettered(group, reason, n))  # fmt: skip


def _merge(a: bool | None, b: bool | None) -> bool | None:
    """An event's status over its units: applied by any > duplicate in any > no unit."""
    if a is None or b is None:
        return b if a is None else a
    return a or b


def run_until(
    stop: threading.Event,
    step: Callable[[], object],
    after_fault: Callable[[], None],
    faults_of: tuple[type[BaseException], ...],
) -> None:
    """Call ``step`` until ``stop``; after a dependency fault, ``after_fault`` then back off
    (longer on each consecutive fault). Anything else is a bug and propagates."""
    faults = 0
    while not stop.is_set():
        try:
            step()
            faults = 0
        except faults_of:
            faults += 1
            after_fault()
            stop.wait(backoff(faults))


# Redis or the network failing: the batch stays pending and is redone after a backoff.
# Any other exception while applying an entry is that entry's: it is dead-lettered.
DEPENDENCY_FAULTS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, SessionConflict)
RETRY_BACKOFF_S = (0.1, 0.5, 2.0)  # waits after consecutive dependency faults (last repeats)


def backoff(faults: int) -> float:
    return RETRY_BACKOFF_S[min(faults, len(RETRY_BACKOFF_S)) - 1]


class EventProcessor:
    def __init__(
        self,
        client: Client,
        cfg: Config,
        *,
        catalogue: Catalogue | None = None,
        consumer: str | None = None,
        group: str | None = None,
        count: int | None = None,
        block_ms: int | None = None,
        claim_min_idle_ms: int | None = None,
        claim_every_s: float | None = None,
        ttl_s: int | None = None,
        observer: EventObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Settings not given come from ``cfg.events``."""
        n, e = cfg.features.n_buckets, cfg.events
        ttl_s = e.dedupe_ttl_s if ttl_s is None else ttl_s
        self.reader = GroupReader.on_event_streams(
            client, cfg, group or e.processor_group, consumer,
            count=count, block_ms=block_ms, claim_min_idle_ms=claim_min_idle_ms,
        )  # fmt: skip
        self.client = client
        self.pseudonyms = Pseudonymizer(cfg.events.id_salt)
        self.tombstone_hash = cfg.events.tombstone_key
        self.sessions = SessionWriter(client, n, cfg.features.history_len, ttl_s, self.pseudonyms)
        self.counters = CounterWriter(client, n, ttl_s, cfg.features)
        self.trending = TrendingWriter(client, ttl_s, Decay.of(e), e.trending_keep)
        self.creators = CreatorLookup(client, n, catalogue)
        self.observer: EventObserver = observer or Tally()
        self.dead = dead_letters_of(client, cfg, self.reader, self.observer)
        self.claim_every_s = e.claim_every_s if claim_every_s is None else claim_every_s
        self.clock = clock
        self._recovered = False
        self._last_claim = 0.0

    def apply(self, entries: Sequence[Entry]) -> None:
        """Apply every effect of ``entries`` once (no XACK: :meth:`step` does that).

        An entry that cannot be applied is dead-lettered, so the batch can be acked: an
        invalid one at once; when the batch fails other than by a dependency fault, each
        event is applied alone (re-applying is a no-op) and the ones that fail are set aside.
        """
        good: list[tuple[Entry, EngagementEvent]] = []
        for entry in entries:
            if entry.event is None:
                set_aside(self.dead, entry)
            else:
                good.append((entry, entry.event))
        try:
            self._apply([ev for _, ev in good])
        except DEPENDENCY_FAULTS:
            raise
        except Exception:
            for entry, ev in good:
                try:
                    self._apply([ev])
                except DEPENDENCY_FAULTS:
                    raise
                except Exception as exc:  # this event alone fails: retrying cannot help
                    set_aside(self.dead, entry, REJECTED, repr(exc))

    def _apply(self, events: list[EngagementEvent]) -> None:
        events = self._without_forgotten(events)
        status: dict[str, bool | None] = {}  # event_id -> applied now / before / no unit
        by_user: dict[int, list[EngagementEvent]] = {}
        counted = self.counters.apply_many(events)
        trended = self.trending.apply_many(events)
        for ev, counter, trend in zip(events, counted, trended, strict=True):
            self.creators.remember(ev)
            for outcome in (counter, trend):
                status[ev.event_id] = _merge(status.get(ev.event_id), outcome)
            by_user.setdefault(ev.user_id, []).append(ev)
        for user_id, evs in by_user.items():
            applied = self.sessions.apply(user_id, evs, self.creators)
            for ev in evs:
                status[ev.event_id] = _merge(status.get(ev.event_id), ev.event_id in applied
                                             if ev.type in SESSION_TYPES else None)  # fmt: skip
        now = self.clock()
        idle = sum(1 for ev in events if status[ev.event_id] is None)
        fresh = [ev for ev in events if status.pop(ev.event_id, None)]  # once per event_id
        self.observer.processed(len(events))
        self.observer.duplicates(len(events) - len(fresh) - idle)
        self.observer.lag([now - ev.ts / 1000 for ev in fresh])
        self._attribute(fresh)

    def _without_forgotten(self, events: list[EngagementEvent]) -> list[EngagementEvent]:
        """Events of users with a tombstone (right to be forgotten) change nothing: one HMGET
        per batch here; the session script re-checks atomically in the user's slot."""
        if not events:
            return events
        pseudo = {e.user_id: self.pseudonyms.user(e.user_id) for e in events}
        gone = forgotten_among(self.client, self.tombstone_hash, pseudo.values())
        if not gone:
            return events
        # An upload's user_id is its creator: catalogue data, kept (as in the lake).
        return [e for e in events if e.type is EventType.UPLOAD or pseudo[e.user_id] not in gone]

    def _attribute(self, fresh: Sequence[EngagementEvent]) -> None:
        """Credit fresh impressions, clicks and watches to the variant that served their
        request (written by the serving impression log), for the rollout quality gates."""
        tracked = [e for e in fresh if e.request_id and e.type in ATTRIBUTED]
        if not tracked:
            return
        keys = [request_variant_key(e.request_id or "") for e in tracked]
        variants = mget_any(self.client, keys)
        for ev, variant in zip(tracked, variants, strict=True):
            if variant is not None:
                self.observer.engagement(variant.decode(), ev.type, ev.watch_ms / 1000)

    def step(self) -> int:
        """One unit of work: recover (first call), claim (periodically) or read; apply; ack."""
        if not self._recovered:
            self.reader.ensure_groups()
            entries = self.reader.recover()
            self._recovered = True
            self._last_claim = time.monotonic()
        elif time.monotonic() - self._last_claim > self.claim_every_s:
            entries = self.reader.claim()
            self._last_claim = time.monotonic()
        else:
            entries = self.reader.read()
        self.apply(entries)
        self.reader.ack(entries)
        return len(entries)

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; a Redis fault backs off and re-reads pending entries."""
        run_until(stop, self.step, self._after_fault, DEPENDENCY_FAULTS)

    def _after_fault(self) -> None:
        self.observer.failed(1)
        self._recovered = False  # the unacked batch is pending: redo it first
