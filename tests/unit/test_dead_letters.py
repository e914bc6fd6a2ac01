"""Which entries are poison, and why: parsing names a reason before any batch is built."""

from __future__ import annotations

import json

import polars as pl

from vidrec.contracts.dead_letters import MISSING, OUT_OF_RANGE, UNPARSEABLE, out_of_range
from vidrec.events.streams import parse
from vidrec.schema import EVENT_SCHEMA, VIDEO_SCHEMA

GOOD = {"event_id": "e", "user_id": 1, "video_id": 2, "type": "click", "ts": 1_600_000_000_000}


def test_out_of_range_names_the_first_value_its_column_cannot_hold() -> None:
    assert out_of_range({"user_id": 2**63 - 1, "position": 2**31 - 1}, EVENT_SCHEMA) is None
    assert out_of_range({"user_id": -(2**63)}, EVENT_SCHEMA) is None
    problem = out_of_range({"user_id": 2**63}, EVENT_SCHEMA)
    assert problem is not None and problem.startswith("user_id=9223372036854775808")
    assert out_of_range({"position": 2**31}, EVENT_SCHEMA) is not None  # Int32
    assert out_of_range({"category_ids": [1, 2**64]}, VIDEO_SCHEMA) is not None  # List(Int64)
    assert out_of_range({"x": 2**70}, {"x": pl.String()}) is None  # not an integer column
    assert out_of_range({"x": 256}, {"x": pl.UInt8()}) is not None
    assert out_of_range({"x": -1}, {"x": pl.UInt8()}) is not None


def test_parse_keeps_the_fields_and_names_the_reason() -> None:
    ok = parse("s:0", b"1-0", {b"event": json.dumps(GOOD).encode()})
    assert ok.event is not None and ok.reason == ""
    cases = [
        ({b"event": b"{garbage"}, UNPARSEABLE),
        ({b"event": json.dumps(GOOD | {"video_id": "abc"}).encode()}, UNPARSEABLE),
        ({b"event": json.dumps({k: v for k, v in GOOD.items() if k != "ts"}).encode()},
         UNPARSEABLE),
        ({b"other": b"x"}, MISSING),
        (None, MISSING),  # trimmed before a pending entry was re-read
    ]  # fmt: skip
    for fields, reason in cases:
        entry = parse("s:0", b"1-1", fields)
        assert (entry.event, entry.reason, entry.fields) == (None, reason, fields)
        assert entry.error
    huge = parse("s:0", "1-2", {"event": json.dumps(GOOD | {"user_id": 2**70})})
    assert huge.event is None and huge.reason in (UNPARSEABLE, OUT_OF_RANGE)
