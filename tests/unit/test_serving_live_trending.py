"""Trending follows the event processor's per-region sets (real Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from tests.integration.redis_servers import standalone_redis
from vidrec.backends.live_trending import LiveTrending
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import ServingConfig
from vidrec.events.trending import TrendingWriter
from vidrec.pipeline.retrievers import Query
from vidrec.schema import EngagementEvent, EventType

pytestmark = pytest.mark.integration  # starts a real redis-server
NOW = 1_790_000_000_000


def click(i: int, video: int, region: str) -> EngagementEvent:
    return EngagementEvent(event_id=f"e{i}", user_id=i, video_id=video, type=EventType.CLICK,
                           ts=NOW - i * 1000, region=region)  # fmt: skip


def test_live_sets_replace_the_offline_table_for_their_region_only(artefacts: Path) -> None:
    state = ServingState.load(artefacts)
    retrieval = LocalRetrieval(state, ServingConfig())
    offline_south = asyncio.run(retrieval.retrieve("trending", Query(region="south"), 5))
    with standalone_redis() as url:
        client = redis.Redis.from_url(url)
        writer = TrendingWriter(client, ttl_s=600)
        for i, video in enumerate([7, 7, 7, 3, 3, 11]):
            writer.apply(click(i, video, "north"))
        live = LiveTrending(writer, state, ("north", "south"), k=10)
        assert live.refresh_once(NOW) == 1  # only north has live data
        client.close()
    north = asyncio.run(retrieval.retrieve("trending", Query(region="north"), 3))
    assert [v.video_id for v in north] == [7, 3, 11]
    assert asyncio.run(retrieval.retrieve("trending", Query(region="south"), 5)) == offline_south
