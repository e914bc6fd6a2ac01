"""A dataset that is not KuaiRec, written to the contract of docs/datasets.md.

Users have a favourite category that their own feature columns reveal (``taste``), click it
far more often, and watch it longer, so a working pipeline must beat popularity on it. The
catalogue's uploads span four years (more than 2^36 ms), its category ids are not 0..30,
and the log is the last ``days`` days, with impression → click → watch → like chains that
share a ``request_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

DAY_MS = 86_400_000
LOG_END_MS = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1000)
CATALOGUE_YEARS = 4
CATEGORY_IDS = np.array([101, 205, 307, 411, 512, 613, 733, 840, 956, 1001])
TASTES = np.array(
    ["cats", "cars", "cooking", "chess", "comedy", "climbing", "cello", "crafts", "cycling", "code"]
)


def make_dataset(
    n_users: int = 160, n_items: int = 600, days: int = 10, slate: int = 6, seed: int = 3
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(interactions, items, users)`` frames in the contract's columns."""
    rng = np.random.default_rng(seed)
    n_cats = len(CATEGORY_IDS)
    start = LOG_END_MS - days * DAY_MS
    item_cat = rng.integers(0, n_cats, n_items)
    # Four years of uploads, the newest few inside the log (items appear mid-log).
    upload = LOG_END_MS - rng.integers(0, CATALOGUE_YEARS * 365 * DAY_MS, n_items)
    upload[: n_items // 20] = start + rng.integers(0, days * DAY_MS // 2, n_items // 20)
    duration = rng.integers(5_000, 300_000, n_items)
    items = pl.DataFrame(
        {
            "item_id": np.arange(1_000, 1_000 + n_items),
            "upload_ts": upload,
            "creator_id": 10_000 + rng.integers(0, n_items // 6, n_items),
            "duration_ms": duration,
            "category": CATEGORY_IDS[item_cat],
            "caption": [f"video {i}" for i in range(n_items)],
        }
    )
    fav = rng.integers(0, n_cats, n_users)
    users = pl.DataFrame(
        {
            "user_id": np.arange(n_users) * 7 + 5,
            "taste": TASTES[fav],
            "age": rng.integers(16, 70, n_users).astype(np.float64),
            "premium": rng.random(n_users) < 0.3,
            "region": rng.choice(["north", "south"], n_users),
        }
    )
    popularity = rng.zipf(1.6, n_items).astype(np.float64)
    by_cat = [np.flatnonzero(item_cat == c) for c in range(n_cats)]
    rows: list[tuple[int, int, int, str, int | None, int, str]] = []
    for u in range(n_users):
        uid = int(users["user_id"][u])
        for day in range(days):
            ts = start + day * DAY_MS + int(rng.integers(0, DAY_MS - 3_600_000))
            live = upload < ts
            pool = by_cat[fav[u]][live[by_cat[fav[u]]]]
            own = pool[rng.choice(pool.size, size=slate // 2, replace=False)] if pool.size else []
            weights = np.where(live, popularity, 0.0)
            other = rng.choice(
                n_items, size=slate - len(own), replace=False, p=weights / weights.sum()
            )
            shown = list(dict.fromkeys([*own, *other]))
            request = f"r{uid}-{day}"
            for pos, item in enumerate(shown):
                iid = int(items["item_id"][int(item)])
                rows.append((uid, iid, ts, "impression", None, pos, request))
                liked = item_cat[item] == fav[u]
                if rng.random() < (0.6 if liked else 0.04):
                    rows.append((uid, iid, ts + 1_000 + pos, "click", None, pos, request))
                    ratio = rng.uniform(0.6, 1.0) if liked else rng.uniform(0.0, 0.4)
                    watch = int(duration[item] * ratio)
                    rows.append((uid, iid, ts + 2_000 + pos, "watch", watch, pos, request))
                    if liked and rng.random() < 0.4:
                        rows.append((uid, iid, ts + 3_000 + pos, "like", None, pos, request))
    interactions = pl.DataFrame(
        rows,
        schema={
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "ts": pl.Int64,
            "event": pl.String,
            "watch_ms": pl.Int64,
            "position": pl.Int64,
            "request_id": pl.String,
        },
        orient="row",
    )
    return interactions, items, users


def write_dataset(
    root: Path,
    frames: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None],
    fmt: str = "parquet",
) -> Path:
    """Write ``(interactions, items, users)`` as ``root/<name>.<fmt>`` (users may be None)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(("interactions", "items", "users"), frames, strict=True):
        if frame is None:
            continue
        if fmt == "csv":
            frame.write_csv(root / f"{name}.csv")
        else:
            frame.write_parquet(root / f"{name}.parquet")
    return root
