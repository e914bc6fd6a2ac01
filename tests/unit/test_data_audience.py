"""The online audience answers served lists with the simulator's outcome model."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.config import load_config
from vidrec.data.audience import Audience
from vidrec.data.outcomes import relevance
from vidrec.offline.profiles import get_profile
from vidrec.offline.run import sim_config


@pytest.fixture(scope="module")
def audience() -> Audience:
    return Audience.of(load_config({}).data.kuairec_dir, sim_config(get_profile("test"), 7), 3)


def test_events_follow_the_served_list(audience: Audience) -> None:
    user = int(audience.user_ids[0])
    videos = [int(v) for v in audience.world.video_ids[:20]] + [10**12]  # last one: unknown
    events = audience.respond(user, videos, "req-1", audience.sim.end_ts)
    impressions = [e for e in events if e["type"] == "impression"]
    assert [e["video_id"] for e in impressions] == videos[:20]  # the unknown video: no answer
    assert [e["position"] for e in impressions] == list(range(20))
    clicks = {e["video_id"] for e in events if e["type"] == "click"}
    watches = {e["video_id"]: e for e in events if e["type"] == "watch"}
    assert clicks == set(watches)  # every click is watched, nothing else is
    assert all(w["watch_ms"] > 0 for w in watches.values())
    assert {e["request_id"] for e in events} == {"req-1"}
    assert len({e["event_id"] for e in events}) == len(events)
    assert audience.respond(-5, videos, "req-2", audience.sim.end_ts) == []  # unknown user


def test_a_better_ordered_list_earns_more_clicks(audience: Audience) -> None:
    """What the ranker serves decides the clicks: best-first beats worst-first."""
    rng = np.random.default_rng(0)
    world, now = audience.world, audience.sim.end_ts
    best = worst = 0
    for _ in range(200):
        u = int(rng.integers(len(world.user_ids)))
        pool = rng.choice(len(world.video_ids), 200, replace=False)
        s, _ = relevance(
            world, np.full(200, u), pool, np.full(200, now), audience._memory, audience.sim
        )
        order = pool[np.argsort(-s)]
        user = int(world.user_ids[u])

        def clicks(idx: np.ndarray, user: int = user) -> int:
            served = [int(world.video_ids[i]) for i in idx]
            return sum(e["type"] == "click" for e in audience.respond(user, served, "r", now))

        best += clicks(order[:10])
        worst += clicks(order[-10:])
    assert best > 3 * max(worst, 1), (best, worst)
