"""Show a real home feed from the running stack, the way a person would read it.

Calls the public HTTP API (the same request a client makes), then prints each item with its
caption from the KuaiRec catalogue and its explanation, anchors ("because you watched 123")
spelled out with that video's caption.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import polars as pl
from rich.console import Console
from rich.table import Table

from vidrec.data import load_catalog

_ANCHOR = re.compile(r"because you watched (\d+)")


def fetch_home(base_url: str, user_id: int, count: int, timeout_s: float = 10.0) -> dict[str, Any]:
    url = f"{base_url.rstrip('/')}/api/v1/recommendations/home"
    response = httpx.get(url, params={"user_id": user_id, "count": count}, timeout=timeout_s)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _captions(videos: pl.DataFrame) -> dict[int, str]:
    rows = videos.select("video_id", "caption", "category_name").iter_rows()
    return {vid: (cap or f"[{cat}]").replace("\n", " ")[:48] for vid, cap, cat in rows}


def feed_table(body: dict[str, Any], captions: dict[int, str]) -> Table:
    title = f"home feed · request {body['request_id'][:8]} · variant {body['variant']}" + (
        f" · degraded: {', '.join(body['degraded_reasons'])}" if body["degraded"] else ""
    )
    table = Table("#", "video", "caption", "source", "score", "why", title=title)
    for i, item in enumerate(body["items"], 1):
        why = _ANCHOR.sub(
            lambda m: f"because you watched “{captions.get(int(m.group(1)), m.group(1))[:24]}”",
            item["explanation"],
        )
        table.add_row(
            str(i),
            str(item["video_id"]),
            captions.get(item["video_id"], ""),
            item["source"],
            f"{item['score']:.3f}",
            why,
        )
    return table


def print_feed(base_url: str, user_id: int, count: int, kuairec_dir: Any) -> None:
    console = Console(width=160)
    body = fetch_home(base_url, user_id, count)
    console.print(feed_table(body, _captions(load_catalog(kuairec_dir).videos)))
