"""Session state: the versioned codec, transitions, the store, and building it from a log."""

from __future__ import annotations

import struct

import polars as pl
import pytest

from vidrec.features import CorruptValue, InMemoryStore, key_for
from vidrec.features.session import (
    SESSION_ENTITY,
    SessionState,
    SessionStore,
    from_events,
)
from vidrec.features.spec import SESSION_WINDOW_MS
from vidrec.features.stores import USER_ENTITY
from vidrec.schema import EVENT_SCHEMA

STATE = SessionState(
    recent_watches=(9, 4, 7),
    seen=(9, 4, 7, 3, 2),
    not_interested_videos=frozenset({3}),
    not_interested_creators=frozenset({30}),
    blocked_creators=frozenset({77, 78}),
    session_depth=5,
    updated_ms=1_594_000_000_000,
    region="north",
    device="ios",
)


def test_codec_round_trip() -> None:
    assert SessionState.decode(STATE.encode()) == STATE
    assert SessionState.decode(SessionState().encode()) == SessionState()


def test_unknown_version_and_garbage_are_rejected() -> None:
    blob = bytearray(STATE.encode())
    struct.pack_into("<H", blob, 4, 2)  # version field
    with pytest.raises(CorruptValue, match="unknown version 2"):
        SessionState.decode(bytes(blob))
    with pytest.raises(CorruptValue, match="magic"):
        SessionState.decode(b"VRFV" + bytes(60))
    with pytest.raises(CorruptValue, match=r"truncated|region"):
        SessionState.decode(STATE.encode()[:-3])


def test_session_key_shares_the_user_vector_slot() -> None:
    for uid in (0, 17, 123_456):
        user_tag = key_for(USER_ENTITY, uid, 64).split(":")[1]
        assert key_for(SESSION_ENTITY, uid, 64).split(":")[1] == user_tag


def test_transitions_keep_newest_first_and_cap() -> None:
    s = SessionState().watched(1, 10, history_len=2).watched(2, 20, 2).watched(1, 30, 2)
    assert s.recent_watches == (1, 2) and s.updated_ms == 30
    s = s.impressed([5, 6, 7], 40, cap=4).impressed([8, 5], 50, cap=4)
    assert s.seen == (5, 8, 7, 6) and s.session_depth == 5
    later = s.impressed([9], 50 + SESSION_WINDOW_MS + 1)
    assert later.session_depth == 1  # a long gap starts a new session
    s = s.not_interested(7, 70, 60)
    assert s.not_interested_videos == {7} and s.not_interested_creators == {70}


def test_store_get_put_update() -> None:
    store = SessionStore(InMemoryStore(n_buckets=8))
    assert store.get(5) == SessionState()
    store.put(5, STATE)
    assert store.get(5) == STATE
    store.update(5, lambda s: s.watched(42, STATE.updated_ms + 1, 20))
    assert store.get(5).recent_watches[:2] == (42, 9)


def _events(rows: list[tuple[int, int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "video_id": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "watch_ms": [0] * len(rows),
            "video_duration_ms": [0] * len(rows),
            "position": [0] * len(rows),
            "surface": ["home"] * len(rows),
            "request_id": ["r"] * len(rows),
            "ts": [r[3] for r in rows],
            "device": ["android"] * len(rows),
            "region": ["south"] * len(rows),
        },
        schema=EVENT_SCHEMA,
    )


def test_from_events_on_a_hand_made_log() -> None:
    at = 10 * SESSION_WINDOW_MS
    events = _events(
        [
            (1, 100, "impression", 1_000),
            (1, 101, "impression", 2_000),
            (1, 100, "watch", 3_000),
            (1, 101, "watch", 4_000),
            (1, 102, "not_interested", 5_000),
            (1, 103, "impression", at - 10),  # inside the session window
            (1, 104, "impression", at + 5),  # after the snapshot: ignored
            (1, 105, "watch", at + 5),
            (2, 101, "impression", 6_000),
            (2, 101, "impression", 7_000),
        ]
    )
    videos = pl.DataFrame({"video_id": [100, 101, 102, 103], "creator_id": [10, 11, 12, 13]})
    users = pl.DataFrame(
        {"user_id": [1, 2, 3], "region": ["north", "east", "west"], "device": ["ios"] * 3}
    )
    states = from_events(events, videos, at, users=users, history_len=1, seen_cap=2)
    one = states[1]
    assert one.recent_watches == (101,)  # most recent, capped at history_len
    assert one.seen == (103, 101)
    assert one.not_interested_videos == {102} and one.not_interested_creators == {12}
    assert one.session_depth == 1 and one.updated_ms == at - 10
    assert (one.region, one.device) == ("south", "android")  # the log's latest wins
    assert states[2].seen == (101,) and states[2].recent_watches == ()
    assert states[3] == SessionState(region="west", device="ios")  # no events: users table
