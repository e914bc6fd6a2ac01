"""Who the load-test users are and what they post: ids from the dataset and the simulator.

A :class:`Workload` holds real KuaiRec user ids that have a simulated history (so the home
feed is personalised, not cold start), real video ids with their durations, and the regions.
``vidrec`` writes one from an artefact dir (:func:`from_artefacts`) into a small JSON file
that the locustfile reads with ``--users-file``; without one, the locustfile falls back to
the KuaiRec id ranges (:func:`kuairec_ranges`).

Engagement events are what a client posts after a page view: impressions, then some clicks
and watches. Every ``event_id`` carries the run's tag, so a run's accepted events can be
found again in the lake and in the processor's markers (events lost = 0).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KUAIREC_USERS = 7_176
KUAIREC_VIDEOS = 10_728
REGIONS = ("north", "south", "east", "west", "central")
DEVICES = ("android", "ios", "web")
# (type, share) per posted event: every type here changes the user's session, so each
# accepted event leaves an ``evu`` marker when the processor applies it (the accounting).
EVENT_MIX = (("impression", 0.62), ("click", 0.15), ("watch", 0.23))
MAX_EVENTS_PER_POST = 5
FEED_COUNT = 20


@dataclass(frozen=True)
class Workload:
    users: tuple[int, ...]
    videos: tuple[int, ...]
    durations_ms: tuple[int, ...]  # aligned with ``videos``
    regions: tuple[str, ...] = REGIONS

    def __post_init__(self) -> None:
        if not self.users or not self.videos:
            raise ValueError("workload: needs at least one user and one video")
        if len(self.durations_ms) != len(self.videos):
            raise ValueError("workload: durations_ms must align with videos")

    def to_json(self) -> dict[str, Any]:
        return {
            "users": list(self.users),
            "videos": list(self.videos),
            "durations_ms": list(self.durations_ms),
            "regions": list(self.regions),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        return cls(
            users=tuple(int(u) for u in data["users"]),
            videos=tuple(int(v) for v in data["videos"]),
            durations_ms=tuple(int(d) for d in data["durations_ms"]),
            regions=tuple(str(r) for r in data.get("regions", REGIONS)),
        )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json()))
        return path


def load_workload(path: Path | str | None) -> Workload:
    """The workload in ``path``, or the KuaiRec id ranges when no file is given."""
    if not path:
        return kuairec_ranges()
    try:
        return Workload.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--users-file {path}: not a workload file ({exc})") from exc


def kuairec_ranges() -> Workload:
    """Every KuaiRec user and video id (durations unknown here: one minute)."""
    return Workload(
        tuple(range(KUAIREC_USERS)), tuple(range(KUAIREC_VIDEOS)), (60_000,) * KUAIREC_VIDEOS
    )


def from_artefacts(artefacts: Path, max_users: int = 5_000, seed: int = 0) -> Workload:
    """Users with a simulated history and the videos of the artefact's event log."""
    import polars as pl

    log = pl.scan_parquet(artefacts / "data" / "events.parquet")
    users = (
        log.select("user_id")
        .unique()
        .collect()["user_id"]
        .sample(fraction=1.0, shuffle=True, seed=seed)
    )
    videos = (
        log.group_by("video_id").agg(pl.col("video_duration_ms").max()).sort("video_id").collect()
    )
    durations = videos["video_duration_ms"].fill_null(60_000).clip(1_000, None)
    return Workload(
        users=tuple(int(u) for u in users.head(max_users).sort()),
        videos=tuple(int(v) for v in videos["video_id"]),
        durations_ms=tuple(int(d) for d in durations),
    )


class EventMaker:
    """Valid engagement events with ids ``<tag>-<n>`` unique within one Locust process."""

    def __init__(self, workload: Workload, tag: str) -> None:
        self.workload = workload
        self.tag = tag
        self._n = 0

    def batch(self, rng: random.Random, now_ms: int) -> list[dict[str, Any]]:
        w = self.workload
        user = rng.choice(w.users)
        region = w.regions[user % len(w.regions)]
        out = []
        for position in range(rng.randint(1, MAX_EVENTS_PER_POST)):
            i = rng.randrange(len(w.videos))
            kind = rng.choices([t for t, _ in EVENT_MIX], [s for _, s in EVENT_MIX])[0]
            self._n += 1
            event: dict[str, Any] = {
                "event_id": f"{self.tag}-{self._n}",
                "user_id": user,
                "video_id": w.videos[i],
                "type": kind,
                "position": position,
                "video_duration_ms": w.durations_ms[i],
                "surface": "home",
                "ts": now_ms,
                "device": DEVICES[user % len(DEVICES)],
                "region": region,
            }
            if kind == "watch":
                event["watch_ms"] = rng.randrange(1_000, max(w.durations_ms[i], 1_001))
            out.append(event)
        return out


def query(kind: str, rng: random.Random, workload: Workload) -> dict[str, Any]:
    """Query parameters of one recommendation request of ``kind``."""
    user = rng.choice(workload.users)
    if kind == "home":
        return {"user_id": user, "count": FEED_COUNT}
    if kind == "related":
        return {"video_id": rng.choice(workload.videos), "user_id": user, "count": FEED_COUNT}
    if kind == "trending":
        return {"region": rng.choice(workload.regions), "count": FEED_COUNT}
    raise ValueError(f"no recommendation query for {kind!r}")


def main(argv: list[str] | None = None) -> int:
    """``python -m vidrec_dev.loadtest.workload ARTEFACTS OUT.json``: write a workload file."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m vidrec_dev.loadtest.workload ARTEFACTS OUT.json", file=sys.stderr)
        return 2
    w = from_artefacts(Path(args[0]))
    w.save(Path(args[1]))
    print(f"workload: {len(w.users):,} users, {len(w.videos):,} videos → {args[1]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
