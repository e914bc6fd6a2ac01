"""Session effects of events, applied to Redis exactly once per ``event_id``.

A user's events are folded into their :class:`SessionState` in Python (the blob format is
Python's), then written by a compare-and-set script together with one ``evu`` marker per
applied event, all in the user's slot: the script refuses when a marker already exists or the
session changed since it was read (optimistic concurrency, like WATCH/MULTI, but one round
trip and identical on standalone and cluster). A refused write is re-read and retried; an
event whose marker exists is a duplicate and changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace

from vidrec.contracts.keys import tombstone_key, user_marker
from vidrec.events.streams import Client
from vidrec.features.session import SESSION_ENTITY, SessionState
from vidrec.features.stores import key_for
from vidrec.schema import EngagementEvent, EventType
from vidrec.security.pseudonym import Pseudonymizer

SESSION_TYPES = frozenset(
    {EventType.IMPRESSION, EventType.CLICK, EventType.WATCH, EventType.NOT_INTERESTED}
)
"""Event types that change a session; others leave it (and its markers) alone."""
MAX_CAS_ATTEMPTS = 5

# KEYS: session, tombstone, marker...  ARGV: sha1 of the session read ("" = absent), new
# blob, ttl. A tombstone (the user was forgotten: vidrec.security.forget) refuses for good.
_CAS = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -2 end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return -1 end
end
local cur = redis.call('GET', KEYS[1])
local digest = ''
if cur then digest = redis.sha1hex(cur) end
if digest ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
for i = 3, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[3]) end
return 1
"""
FORGOTTEN = -2


class SessionConflict(Exception):
    """The session kept changing under us (another writer on the same user)."""


def apply_event(
    state: SessionState, event: EngagementEvent, creator_id: int, history_len: int
) -> SessionState:
    """The session after one event (pure). ``creator_id`` is -1 when unknown."""
    if event.type == EventType.IMPRESSION:
        state = state.impressed([event.video_id], event.ts)
    elif event.type in (EventType.CLICK, EventType.WATCH):
        state = state.watched(event.video_id, event.ts, history_len)
    elif event.type == EventType.NOT_INTERESTED:
        state = state.not_interested(event.video_id, creator_id, event.ts)
    return replace(state, region=event.region or state.region, device=event.device or state.device)


class SessionWriter:
    """Applies a user's events to their session, once each."""

    def __init__(
        self,
        client: Client,
        n_buckets: int,
        history_len: int,
        ttl_s: int,
        pseudonyms: Pseudonymizer | None = None,
    ) -> None:
        self.client = client
        self.pseudonyms = pseudonyms or Pseudonymizer("")
        self.n_buckets = n_buckets
        self.history_len = history_len
        self.ttl_s = ttl_s
        self._cas = client.register_script(_CAS)

    def apply(
        self, user_id: int, events: Sequence[EngagementEvent], creator_of: Callable[[int], int]
    ) -> set[str]:
        """Apply ``events`` (stream order) of one user; return the event ids that were new."""
        events = [e for e in events if e.type in SESSION_TYPES]
        if not events:
            return set()
        session_key = key_for(SESSION_ENTITY, user_id, self.n_buckets)
        markers = [user_marker(e.event_id, user_id, self.n_buckets) for e in events]
        for _ in range(MAX_CAS_ATTEMPTS):
            reply: list[bytes | None] = self.client.mget([session_key, *markers])  # type: ignore[assignment]
            blob, *seen = reply  # one slot: one MGET
            fresh = [(e, m) for e, m, s in zip(events, markers, seen, strict=True) if s is None]
            fresh = list({m: (e, m) for e, m in fresh}.values())  # same event twice in a batch
            if not fresh:
                return set()
            state = SessionState() if blob is None else SessionState.decode(blob)
            for event, _ in fresh:
                ni = event.type == EventType.NOT_INTERESTED
                creator = creator_of(event.video_id) if ni else -1
                state = apply_event(state, event, creator, self.history_len)
            digest = "" if blob is None else hashlib.sha1(blob).hexdigest()
            tomb = tombstone_key(user_id, self.pseudonyms.user(user_id), self.n_buckets)
            keys = [session_key, tomb, *(m for _, m in fresh)]
            reply = self._cas(keys=keys, args=[digest, state.encode(), self.ttl_s])
            if reply == 1:
                return {e.event_id for e, _ in fresh}
            if reply == FORGOTTEN:
                return set()
        raise SessionConflict(f"user {user_id}: session changed {MAX_CAS_ATTEMPTS} times")
