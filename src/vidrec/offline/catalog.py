"""The catalogue as an event log last saw it.

An event log is the truth about uploads: a video's ``upload`` event fixes its upload time and
creator. Training from a log (the lake, or a simulated one) must use those, or video age and
freshness features would disagree with what serving computes.
"""

from __future__ import annotations

import polars as pl

from vidrec.errors import InputError
from vidrec.schema import EventType


def videos_as_of_log(videos: pl.DataFrame, events: pl.DataFrame, source: str) -> pl.DataFrame:
    """``videos`` with upload time/creator taken from the log's ``upload`` events."""
    uploads = (
        events.filter(pl.col("type") == EventType.UPLOAD.value)
        .group_by("video_id")
        .agg(pl.col("ts").min().alias("_upload_ts"), pl.col("user_id").first().alias("_creator"))
    )
    known = videos["video_id"].implode()
    unknown = events.filter(~pl.col("video_id").is_in(known))
    if unknown.height:
        raise InputError(
            f"{source}: column 'video_id' has {unknown.height} events for videos not in the"
            f" catalogue (e.g. {unknown['video_id'][0]}); add them to the catalogue first"
        )
    return (
        videos.join(uploads, on="video_id", how="left")
        .with_columns(
            pl.coalesce("_upload_ts", "upload_ts").alias("upload_ts"),
            pl.coalesce("_creator", "creator_id").alias("creator_id"),
        )
        .select(videos.columns)
    )
