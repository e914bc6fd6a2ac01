"""Cold start against a real Redis: uploads written by the intake are read from
``<prefix>:videos``, embedded, made retrievable and given a feature vector; bad entries and a
Redis outage are counted, never fatal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from tests.integration.redis_servers import standalone_redis
from tests.unit.test_coldstart_index import NEW_ID, embedder, lookalike, run  # noqa: F401
from vidrec.api.events import RedisStreamEventWriter, videos_stream
from vidrec.backends.coldstart import ColdStart, ItemEmbedder, blocking_read_ms
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.features import VIDEO_ENTITY, VIDEO_SPEC, RedisStore, unpack
from vidrec.pipeline.retrievers import Query
from vidrec.schema import EngagementEvent, EventType

PREFIX = "test:events"
Parts = tuple[ServingState, LocalRetrieval, ColdStart, RedisStreamEventWriter, RedisStore]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with standalone_redis() as url:
        yield url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def parts(artefacts: Path, client: redis.Redis, embedder: ItemEmbedder) -> Parts:  # noqa: F811
    state = ServingState.load(artefacts)
    retrieval = LocalRetrieval(state)
    store = RedisStore(client)
    cold = ColdStart(client, videos_stream(PREFIX), retrieval, embedder, store, block_ms=50)
    return state, retrieval, cold, RedisStreamEventWriter(client, PREFIX, 4), store


@pytest.mark.integration  # starts a real redis-server
def test_upload_becomes_retrievable_with_a_feature_vector(parts: Parts) -> None:
    state, retrieval, cold, writer, store = parts
    video = lookalike(state, int(state.catalogue.video_id[0]))
    run(writer.append_video(lookalike(state, int(state.catalogue.video_id[1]), NEW_ID + 5)))
    assert cold.poll() == 0  # the cursor starts at the end: history is the artefacts' job

    run(writer.append_video(video))
    assert cold.poll() == 1
    assert NEW_ID in [
        v.video_id for v in run(retrieval.retrieve("fresh", Query(now_ms=state.clock_ms()), 5))
    ]
    assert NEW_ID + 5 not in retrieval.catalogue.video_id

    (blob,) = store.get_many(VIDEO_ENTITY, [NEW_ID])
    assert blob is not None
    vector, _ = unpack(VIDEO_SPEC, blob)
    cats = vector[VIDEO_SPEC.slice("categories")]
    assert cats.sum() == len(video.category_ids) and all(cats[c] == 1 for c in video.category_ids)
    for counter in ("views_1h", "views_1d", "impressions"):
        assert vector[VIDEO_SPEC.slice(counter)][0] == 0
    assert vector[VIDEO_SPEC.slice("creator_id")][0] == video.creator_id
    assert cold.stats.added == 1 and cold.stats.last_delay_ms >= 0


@pytest.mark.integration  # starts a real redis-server
def test_upload_events_and_bad_entries(parts: Parts, client: redis.Redis) -> None:
    state, retrieval, cold, writer, _ = parts
    cold.poll(block_ms=1)  # cursor at the (empty) end
    client.xadd(videos_stream(PREFIX), {"video": "{not json"})
    client.xadd(videos_stream(PREFIX), {"something": "else"})
    upload = EngagementEvent(event_id="u1", user_id=7, video_id=NEW_ID, type=EventType.UPLOAD,
                             video_duration_ms=20_000, ts=state.clock_ms())  # fmt: skip
    run(writer.append([upload]))  # an upload event is mirrored onto <prefix>:videos
    assert cold.poll() == 1
    assert cold.stats.bad_entries == 2
    row = retrieval.catalogue.rows(np.asarray([NEW_ID]))[0][0]
    assert retrieval.catalogue.creator_id[row] == 7


@pytest.mark.integration  # starts a real redis-server
def test_background_thread_survives_a_redis_outage(parts: Parts) -> None:
    state, retrieval, cold, writer, store = parts
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    broken = ColdStart(dead, videos_stream(PREFIX), retrieval, cold.embedder, store)
    broken.start()
    time.sleep(0.3)
    broken.stop()
    assert broken.stats.failures >= 1  # counted, and the thread stopped cleanly

    cold.poll(block_ms=1)  # resolve the cursor before anything is written
    live = cold.start()
    try:
        run(writer.append_video(lookalike(state, int(state.catalogue.video_id[2]))))
        deadline = time.monotonic() + 10
        while NEW_ID not in retrieval.catalogue.video_id and time.monotonic() < deadline:
            time.sleep(0.05)
        assert NEW_ID in retrieval.catalogue.video_id
    finally:
        live.stop()


def test_a_blocking_read_ends_before_the_clients_socket_timeout() -> None:
    """The serving client times out after 0.5 s: an XREAD blocking 1 s would fail every poll
    (and a cluster client rebuilds its slot map after each failure)."""
    hot_path = redis.Redis(port=1, socket_timeout=0.5)  # never connects: only its settings
    assert 0 < blocking_read_ms(hot_path, 1000) < 500
    assert blocking_read_ms(hot_path, 100) == 100
    assert blocking_read_ms(redis.Redis(port=1), 1000) == 1000  # no timeout: as asked
