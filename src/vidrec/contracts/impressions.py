"""The impression log entry: one Redis Streams entry per served page.

Training labels and online CTR are joined from these entries, so serving (the writer) and the
event processor and offline jobs (the readers) share this one layout: scalars as strings,
lists as JSON in served order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

VARIANT_TTL_S = 24 * 3600  # engagement arriving later than this is not attributed


def impression_fields(
    request_id: str,
    variant: str,
    user_id: int | None,
    video_ids: Sequence[int],
    scores: Sequence[float],
    sources: Sequence[str],
    now_ms: int,
) -> dict[str, str]:
    """The stream entry (``positions`` = served order)."""
    return {
        "request_id": request_id,
        "variant": variant,
        "user_id": "" if user_id is None else str(user_id),
        "ts": str(now_ms),
        "items": json.dumps([int(v) for v in video_ids]),
        "positions": json.dumps(list(range(len(video_ids)))),
        "scores": json.dumps([round(float(s), 6) for s in scores]),
        "sources": json.dumps(list(sources)),
    }
