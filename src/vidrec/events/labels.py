"""Training labels from the lake: each impression joined with its outcomes.

An impression's outcomes are the click / watch / like events with the same
``(request_id, video_id)`` and a ``ts`` within ``[impression ts, impression ts + window_ms]``.
The join is a pure function of the events it is given: there is no state to patch. A late
outcome (written to the lake in a later batch, even a later hour partition) is picked up by
re-running the join over the lake, and the row for that ``(request_id, video_id)`` then
carries the new label — an upsert keyed by ``(request_id, video_id)``; a consumer that
stored the earlier result replaces rows by that key. Outcomes past the window never count,
so labels of impressions older than the window are final.
"""

from __future__ import annotations

import polars as pl

from vidrec.schema import EventType

KEY = ["request_id", "video_id"]
OUTCOMES = (EventType.CLICK, EventType.WATCH, EventType.LIKE)


def join_labels(events: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """One row per (request_id, video_id) impression: ``user_id ts position surface`` and
    Int8 ``click watch like``, ``watch_ms`` (longest watch), ``label_ts`` (latest outcome
    counted, null when none). Duplicate ``event_id`` rows count once; impressions without a
    ``request_id`` cannot be joined and are left out."""
    ev = events.unique("event_id", keep="first", maintain_order=True).filter(
        pl.col("request_id").is_not_null()
    )
    imps = (
        ev.filter(pl.col("type") == EventType.IMPRESSION.value)
        .sort("ts")
        .group_by(KEY, maintain_order=True)
        .agg(pl.col("user_id", "ts", "position", "surface").first())
    )
    outcomes = (
        ev.filter(pl.col("type").is_in([t.value for t in OUTCOMES]))
        .select(*KEY, "type", "watch_ms", pl.col("ts").alias("out_ts"))
        .join(imps.select(*KEY, "ts"), on=KEY, how="inner")
        .filter(pl.col("out_ts").is_between(pl.col("ts"), pl.col("ts") + window_ms))
        .group_by(KEY)
        .agg(
            *((pl.col("type") == t.value).any().cast(pl.Int8).alias(t.value) for t in OUTCOMES),
            pl.col("watch_ms").filter(pl.col("type") == EventType.WATCH.value).max(),
            pl.col("out_ts").max().alias("label_ts"),
        )
    )
    labels = [t.value for t in OUTCOMES]
    return (
        imps.join(outcomes, on=KEY, how="left")
        .with_columns(pl.col(*labels).fill_null(0), pl.col("watch_ms").fill_null(0))
        .sort("ts", *KEY)
    )
