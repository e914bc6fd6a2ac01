"""Simulated users answering *served* feeds: the simulator's outcome model, online.

Offline, the simulator decides what each user sees and how they respond. Online, the
recommender decides what they see; an :class:`Audience` responds to it with the same world
(affinities, quality, durations) and the same outcome model (position bias × attractiveness
for clicks, then watch time), so a ranker that orders feeds worse earns fewer clicks and less
watch time *because of what it served*. Rollout end-to-end tests and load tests use it to
put recommendation quality — not only latency — under Prometheus's eyes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidrec.data.kuairec import load_catalog
from vidrec.data.outcomes import respond
from vidrec.data.simulator import SimConfig, schedule_uploads
from vidrec.data.world import World, build_world


@dataclass
class Audience:
    world: World
    sim: SimConfig
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    _user_index: dict[int, int] = field(init=False, repr=False)
    _video_index: dict[int, int] = field(init=False, repr=False)
    _ids: itertools.count[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.sim.seed, 11, self.seed])
        self._user_index = {int(u): i for i, u in enumerate(self.world.user_ids)}
        self._video_index = {int(v): i for i, v in enumerate(self.world.video_ids)}
        self._ids = itertools.count()
        # No creator memory online: loyalty needs the user's history, which the server holds.
        self._memory = np.full((len(self.world.user_ids), 1), -1, dtype=np.int32)

    @classmethod
    def of(cls, kuairec_dir: Path, sim: SimConfig, seed: int = 0) -> Audience:
        """The world an offline run with ``sim`` simulated (same catalogue, same seed)."""
        catalog = schedule_uploads(load_catalog(kuairec_dir, seed=sim.seed), sim)
        return cls(build_world(catalog, sim), sim, seed)

    @property
    def user_ids(self) -> np.ndarray:
        return self.world.user_ids

    def respond(
        self,
        user_id: int,
        video_ids: Sequence[int],
        request_id: str,
        ts_ms: int,
        surface: str = "home",
    ) -> list[dict[str, Any]]:
        """Impression, click and watch events (``EngagementEvent`` JSON) for one served list:
        an app reports what it showed, then what the user did with it.

        Videos the world does not know (e.g. uploaded after it was built) get no response;
        ``ts_ms`` is the impression time on the serving clock."""
        known = [
            (p, self._video_index[v]) for p, v in enumerate(video_ids) if v in self._video_index
        ]
        if user_id not in self._user_index or not known:
            return []
        n = len(known)
        positions = np.array([p for p, _ in known], dtype=np.int32)
        videos = np.array([v for _, v in known], dtype=np.int64)
        users = np.full(n, self._user_index[user_id], dtype=np.int64)
        ts = np.full(n, ts_ms, dtype=np.int64) + positions
        out = respond(self.world, users, videos, positions, ts, self._memory, self.sim, self._rng)
        events: list[dict[str, Any]] = []
        for i in range(n):
            v = videos[i]
            base = {
                "user_id": user_id,
                "video_id": int(self.world.video_ids[v]),
                "position": int(positions[i]),
                "surface": surface,
                "request_id": request_id,
                "video_duration_ms": int(self.world.duration_ms[v]),
            }
            tag = f"aud-{self.seed}-{next(self._ids)}"
            events.append({**base, "event_id": f"{tag}-i", "type": "impression", "ts": int(ts[i])})
            if not out.click[i]:
                continue
            click_ts = int(out.click_ts[i])
            events.append({**base, "event_id": f"{tag}-c", "type": "click", "ts": click_ts})
            watch_ms, watch_ts = int(out.watch_ms[i]), int(out.watch_ts[i])
            events.append(
                {
                    **base,
                    "event_id": f"{tag}-w",
                    "type": "watch",
                    "watch_ms": watch_ms,
                    "ts": watch_ts,
                }
            )
        return events
