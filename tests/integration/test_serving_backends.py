"""The serving backends against REAL servers: a 3-master Redis Cluster, standalone Redis and
tritonserver over the artefact's own model repository."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest
import redis
import torch

from vidrec.backends.features import FeatureFetcher
from vidrec.backends.impressions import RedisStreamImpressionSink
from vidrec.backends.ranker import TritonRankerClient
from vidrec.backends.routing import RoutingCache
from vidrec.backends.serving_state import static_dim_of
from vidrec.config import RedisConfig, ServingConfig, load_config
from vidrec.contracts.manifest import read_manifest
from vidrec.contracts.routing import RoutingTable, VariantRoute
from vidrec.features import make_store, user_spec
from vidrec.features.point_in_time import FeatureState
from vidrec.features.session import SessionStore, from_events
from vidrec.models.mmoe import predict
from vidrec.models.persist import load_models
from vidrec.offline.serving_prep import load_videos_and_events, prepare_serving
from vidrec.pipeline.base import Candidate, DependencyError

sys.path.insert(0, str(Path(__file__).parent))
from redis_servers import redis_cluster, standalone_redis
from triton_server import triton_server

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
N_BUCKETS = 64
# Generous deadlines: the first calls open connections on a shared, busy machine.
CFG = ServingConfig(deadline_context_ms=2000, deadline_hydrate_ms=2000, breaker_failures=50)


def mget_calls(ports: tuple[int, ...]) -> int:
    total = 0
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        total += int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))
        client.close()
    return total


def test_prepare_then_fetch_from_a_real_cluster(artefacts: Path) -> None:
    manifest = read_manifest(artefacts / "manifest.json")
    videos, events = load_videos_and_events(artefacts, manifest, load_config().data.kuairec_dir)
    with redis_cluster() as cluster:
        redis_cfg = RedisConfig(url=cluster.url, cluster=True)
        counts = prepare_serving(artefacts, redis_cfg, N_BUCKETS, progress=False)
        assert counts.users > 1000 and counts.videos > 1000 and counts.sessions >= counts.users
        store = make_store(redis_cfg, N_BUCKETS)
        fetcher = FeatureFetcher(store, user_spec(static_dim_of(manifest)), CFG)

        sessions = from_events(events, videos, counts.at_ms)
        user = max(sessions, key=lambda u: len(sessions[u].recent_watches))
        before = mget_calls(cluster.ports)
        ctx = asyncio.run(fetcher.user_context(user, None))
        assert mget_calls(cluster.ports) - before == 1  # vector + session: ONE MGET
        assert ctx.known and ctx.vector is not None
        assert ctx.recent_watches == sessions[user].recent_watches and ctx.recent_watches
        assert ctx.seen == frozenset(sessions[user].seen)
        assert ctx.region == sessions[user].region
        assert SessionStore(store).get(user) == sessions[user]

        state = FeatureState(events, videos, None)
        ids = videos.filter(videos["upload_ts"] < counts.at_ms)["video_id"].sample(500, seed=1)
        matrix, present = asyncio.run(fetcher.video_vectors(ids.to_list()))
        assert present.all() and fetcher.fill_rate == 1.0
        np.testing.assert_array_equal(matrix, state.video_vectors(ids.to_numpy(), counts.at_ms))
        again, _ = asyncio.run(fetcher.video_vectors(ids.to_list()))
        assert fetcher.lru.hits == 500 and np.array_equal(again, matrix)
        assert not asyncio.run(fetcher.user_context(10**9, "west")).known

    # The cluster is gone: a dependency error with a reason, never a crash.
    with pytest.raises(DependencyError) as err:
        asyncio.run(fetcher.user_context(user, None))
    assert err.value.reason in {"unavailable", "timeout"}
    with pytest.raises(DependencyError):
        asyncio.run(fetcher.video_vectors([1_000_000]))


def test_impressions_and_routing_on_standalone_redis() -> None:
    served = [Candidate(7, "trending", 0.5, score=0.9), Candidate(3, "fresh", 0.1, score=0.2)]
    with standalone_redis() as url:
        client = redis.Redis.from_url(url, socket_timeout=1.0)
        sink = RedisStreamImpressionSink(client, "imp", maxlen=1000, timeout_s=2.0)
        asyncio.run(sink.log("req-1", "canary", 42, served, 1_000))
        entries = client.xrange("imp")
        assert isinstance(entries, list) and len(entries) == 1
        fields = entries[0][1]
        assert fields is not None
        assert fields[b"request_id"] == b"req-1" and fields[b"variant"] == b"canary"
        assert fields[b"items"] == b"[7, 3]" and fields[b"positions"] == b"[0, 1]"
        assert fields[b"scores"] == b"[0.9, 0.2]" and fields[b"user_id"] == b"42"

        now = [0.0]
        routing = RoutingCache(
            client, "route", "salt", ttl_s=5, timeout_s=2.0, clock=lambda: now[0]
        )
        assert asyncio.run(routing.table()).variants[0].name == "stable"
        table = RoutingTable((VariantRoute("stable", 80, 1), VariantRoute("canary", 20, 2)), 3)
        client.set("route", table.to_json())
        assert asyncio.run(routing.table()).revision == 0  # cached for ttl_s
        now[0] = 6.0
        assert asyncio.run(routing.table()) == table
        assert routing.version_for_variant("canary") == "2"
        client.set("route", b"{not json")
        now[0] = 12.0
        assert asyncio.run(routing.table()) == table and routing.parse_errors == 1
    now[0] = 18.0
    assert asyncio.run(routing.table()) == table and routing.read_errors == 1
    with pytest.raises(DependencyError) as err:
        asyncio.run(sink.log("req-2", "stable", None, served, 2_000))
    assert err.value.reason == "unavailable"


def test_triton_ranker_client_equals_torch(artefacts: Path) -> None:
    x = np.load(artefacts / "models" / "eval_sample.npz")["ranker_x"][:300].astype(np.float32)
    expected = predict(load_models(artefacts / "models").ranker.serving, x)

    async def score(client: TritonRankerClient) -> np.ndarray:
        try:
            return (await client.score(x, "stable")).heads
        finally:
            await client.close()

    def cache(table: RoutingTable) -> RoutingCache:
        routing = RoutingCache(None, "route", "salt", reader=lambda: table.to_json().encode())  # type: ignore[arg-type]
        asyncio.run(routing.table())
        return routing

    async def labels(routing: RoutingCache, asked: list[str]) -> list[str]:
        client = TritonRankerClient(
            url, "ranker", 10.0, routing.version_for_variant,
            answered_variant=routing.answered_variant,
        )  # fmt: skip
        try:
            return [(await client.score(x[:5], a)).variant for a in asked]
        finally:
            await client.close()

    with triton_server(artefacts / "model_repository", models=["ranker"]) as server:
        url = server.grpc_url
        client = TritonRankerClient(url, "ranker", 10.0, lambda variant: "1")
        got = asyncio.run(score(client))
        # The label is the variant whose version Triton ran (the repository holds version 1).
        v1 = (VariantRoute("stable", 50, 1), VariantRoute("canary", 50, 2))
        assert asyncio.run(labels(cache(RoutingTable(v1)), ["stable"])) == ["stable"]
        # Upstream split: serving asks for no version; whatever ran names the variant.
        upstream = cache(RoutingTable(v1[::-1], split="upstream"))
        assert upstream.version_for_variant("canary") == ""
        assert asyncio.run(labels(upstream, ["unattributed"] * 2)) == ["stable"] * 2
        v2 = (VariantRoute("stable", 50, 2), VariantRoute("canary", 50, 1))
        assert asyncio.run(labels(cache(RoutingTable(v2, split="upstream")), ["x"])) == ["canary"]
        v3 = (VariantRoute("stable", 100, 3),)
        assert asyncio.run(labels(cache(RoutingTable(v3, split="upstream")), ["x"])) == ["unknown"]
    assert got.shape == (300, 3) and np.abs(got - expected).max() < 1e-4

    down = TritonRankerClient(url, "ranker", 2.0, lambda variant: "1")
    with pytest.raises(DependencyError) as err:
        asyncio.run(score(down))
    assert err.value.reason in {"unavailable", "timeout"}
