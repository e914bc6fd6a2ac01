"""Label join: outcomes within the window count, late ones update the label on re-run."""

from __future__ import annotations

import polars as pl

from vidrec.events.labels import join_labels
from vidrec.schema import EVENT_SCHEMA

WINDOW = 60_000


def ev(
    event_id: str, type_: str, video: int, ts: int, request: str | None = "r1", **kw: object
) -> dict:
    row: dict[str, object] = dict.fromkeys(EVENT_SCHEMA)
    row.update(event_id=event_id, user_id=1, video_id=video, type=type_, ts=ts, watch_ms=0)
    row.update(video_duration_ms=10_000, position=0, surface="home", request_id=request)
    row.update(kw)
    return row


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")


def label(df: pl.DataFrame, video: int, col: str) -> int:
    return int(df.filter(pl.col("video_id") == video)[col].item())


def test_late_outcome_updates_the_label_when_rejoined() -> None:
    first = [ev("i1", "impression", 10, 1_000), ev("i2", "impression", 11, 1_000, position=1)]
    late = [
        ev("c1", "click", 10, 30_000),
        ev("w1", "watch", 10, 40_000, watch_ms=8_000),
        ev("c2", "click", 11, 1_000 + WINDOW + 1),  # past the window: never counts
    ]
    before = join_labels(frame(first), WINDOW)
    assert before.height == 2 and before["click"].sum() == 0
    after = join_labels(frame(first + late), WINDOW)
    assert after.height == 2  # upsert: same keys, new labels
    assert (label(after, 10, "click"), label(after, 10, "watch"), label(after, 10, "like")) == (
        1, 1, 0,
    )  # fmt: skip
    assert label(after, 10, "watch_ms") == 8_000 and label(after, 10, "label_ts") == 40_000
    assert (
        label(after, 11, "click") == 0
        and after.filter(pl.col("video_id") == 11)["label_ts"].is_null().all()
    )


def test_outcomes_join_only_their_own_request_and_duplicates_count_once() -> None:
    rows = [
        ev("i1", "impression", 10, 1_000),
        ev("i1", "impression", 10, 1_000),  # redelivered copy
        ev("i3", "impression", 10, 2_000, request="r2"),
        ev("k1", "like", 10, 5_000, request="r2"),
        ev("x", "impression", 12, 1_000, request=None),  # cannot be joined
    ]
    out = join_labels(frame(rows), WINDOW)
    assert out.select("request_id", "like").rows() == [("r1", 0), ("r2", 1)]
