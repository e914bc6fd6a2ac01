"""Every Redis key layout, for every writer and reader.

Per-entity keys are ``<entity>:{b<id % n_buckets>}:<id>``: the hash tag spreads entities over
``n_buckets`` slots and keeps what one Lua script touches in one slot. A state change and its
dedupe marker share a tag, so the script applies both atomically: a user's session, its
``evu`` marker and tombstone in the user's ``{b<k>}``; a video's counters and ``evv`` marker in
the video's ``{b<k>}``; a region's trending set and ``evt`` marker in ``{r:<region>}``.
"""

from __future__ import annotations

from collections.abc import Sequence

USER_ENTITY = "uf"  # packed user feature vector
VIDEO_ENTITY = "vf"  # packed video feature vector
SESSION_ENTITY = "ss"  # session state: recent watches, seen set, not-interested lists
COUNTER_ENTITY = "vc"  # per-video windowed counters + CTR (a hash)
CREATOR_ENTITY = "vcr"  # creator of a video uploaded after the artefacts were built
TOMBSTONE_ENTITY = "tomb"  # a forgotten user (keyed by pseudonym, in the user's slot)
USER_ENTITIES = (USER_ENTITY, SESSION_ENTITY)  # every per-user key a forget erases


def tag_of_bucket(bucket: int) -> str:
    """The hash tag of bucket ``bucket``: every key of the bucket lives in its slot."""
    return f"{{b{bucket}}}"


def bucket_tag(entity_id: int, n_buckets: int) -> str:
    return tag_of_bucket(entity_id % n_buckets)


def key_for(entity: str, entity_id: int, n_buckets: int) -> str:
    """The one per-entity key layout every store and every reader uses."""
    return f"{entity}:{bucket_tag(entity_id, n_buckets)}:{entity_id}"


def keys_for(entity: str, ids: Sequence[int], n_buckets: int) -> list[str]:
    return [key_for(entity, int(i), n_buckets) for i in ids]


def user_marker(event_id: str, user_id: int, n_buckets: int) -> str:
    return f"evu:{bucket_tag(user_id, n_buckets)}:{event_id}"


def video_marker(event_id: str, video_id: int, n_buckets: int) -> str:
    return f"evv:{bucket_tag(video_id, n_buckets)}:{event_id}"


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


def tombstone_key(user_id: int, pseudonym: int, n_buckets: int) -> str:
    """In the user's bucket (slot) so the session script can check it atomically."""
    return f"{TOMBSTONE_ENTITY}:{bucket_tag(user_id, n_buckets)}:{pseudonym}"


def user_keys(user_id: int, n_buckets: int) -> list[str]:
    """Every per-user key (what a forget deletes)."""
    return [key_for(entity, user_id, n_buckets) for entity in USER_ENTITIES]


def request_variant_key(request_id: str) -> str:
    """Which variant served a request (written by serving, read by the event processor)."""
    return f"rv:{request_id}"


def dead_letter_stream(group: str) -> str:
    """The entries consumer group ``group`` could not apply (one stream per group; cold
    start's readers share ``coldstart``). Its hash tag holds the markers below in its slot."""
    return f"dead:{{dl:{group}}}"


def dead_letter_marker(group: str, stream: str, entry_id: str) -> str:
    """Set when ``stream``'s entry ``entry_id`` is dead-lettered for ``group``: a redelivered
    entry, or the same entry seen by another cold-start replica, is written once."""
    return f"dls:{{dl:{group}}}:{stream}:{entry_id}"
