"""Redis key layouts written by the event processor, next to the feature-store layout.

Every state change and its dedupe marker share one hash tag, so a Lua script (one slot)
applies both atomically: a user's session and ``evu`` marker in the user's ``{b<k>}``, a
video's counters and ``evv`` marker in the video's ``{b<k>}``, a region's trending set and
``evt`` marker in ``{r:<region>}``.
"""

from __future__ import annotations

from vidrec.features.stores import key_for

COUNTER_ENTITY = "vc"  # per-video windowed counters + CTR (a hash)
CREATOR_ENTITY = "vcr"  # creator of a video uploaded after the artefacts were built


def user_marker(event_id: str, user_id: int, n_buckets: int) -> str:
    return f"evu:{{b{user_id % n_buckets}}}:{event_id}"


def video_marker(event_id: str, video_id: int, n_buckets: int) -> str:
    return f"evv:{{b{video_id % n_buckets}}}:{event_id}"


def region_tag(region: str) -> str:
    return f"{{r:{region}}}"


def trending_key(region: str, epoch: int) -> str:
    return f"tr:{region_tag(region)}:{epoch}"


def trending_marker(event_id: str, region: str) -> str:
    return f"evt:{region_tag(region)}:{event_id}"


def counter_key(video_id: int, n_buckets: int) -> str:
    return key_for(COUNTER_ENTITY, video_id, n_buckets)


def creator_key(video_id: int, n_buckets: int) -> str:
    return key_for(CREATOR_ENTITY, video_id, n_buckets)
