"""The composition root: one place that turns a :class:`Config` into a serving stack.

HTTP (BentoML) and gRPC both call :func:`build_api`, so they serve the very same pipeline,
clients and metrics. Nothing else in the API package constructs a client.

Hydration stays in-process (FeatureFetcher on the shared Redis client): the hot path reads a
user context and ~500 video vectors per request, and an extra HTTP hop to the Features service
would add a round trip and vector serialisation to every request for no isolation benefit.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from typing import Any

import redis
from redis.cluster import RedisCluster

from vidrec.api.body import BodyLimits
from vidrec.api.events import EventIntake, RedisStreamEventWriter, videos_stream
from vidrec.api.http_app import Api
from vidrec.api.request_metrics import PrometheusObserver
from vidrec.api.service import RecommendationService
from vidrec.backends.coldstart import ColdStart, launch
from vidrec.backends.features import FeatureFetcher
from vidrec.backends.impressions import RedisStreamImpressionSink
from vidrec.backends.live_trending import LiveTrending
from vidrec.backends.ranker import TritonRankerClient, ranker_channel_options
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.routing import RoutingCache, default_table, file_reader
from vidrec.backends.serving_state import ServingState
from vidrec.config import Config
from vidrec.contracts.trending import Decay, TrendingSets
from vidrec.features import make_store, user_spec
from vidrec.features.stores import OnlineStore
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.fallbacks import PopularList
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.pipeline.runner import PipelineRunner
from vidrec.pipeline.surfaces import (
    PipelineDeps,
    category_surface,
    home_surface,
    related_surface,
    trending_surface,
)
from vidrec.security.forget import Eraser
from vidrec.security.guard import Guard
from vidrec.security.pseudonym import Pseudonymizer

IMPRESSION_MAXLEN = 1_000_000


def redis_client(store: OnlineStore) -> redis.Redis | RedisCluster:
    """The store's client: the one Redis client of the process (routing, impressions...)."""
    client: redis.Redis | RedisCluster = getattr(store, "client")  # noqa: B009
    return client


def build_api(
    cfg: Config, *, retrieval: RetrievalClient | None = None, raise_bugs: bool = False
) -> Api:
    """Everything the transports need, built once per process.

    ``retrieval``: a remote client (``ServingConfig.retrieval_mode = "remote"``, the BentoML
    Retrieval service through ``bentoml.depends``); None serves retrieval in-process.
    """
    s = cfg.serving
    state = ServingState.load(s.artefacts_dir)
    store = make_store(cfg.redis, cfg.features.n_buckets)
    client = redis_client(store)
    observer = PrometheusObserver()
    pseudonyms = Pseudonymizer(cfg.events.id_salt)
    features = FeatureFetcher(store, user_spec(state.static_dim), s,
                              n_buckets=cfg.features.n_buckets)  # fmt: skip
    observer.watch_features(features)
    reader = file_reader(s.routing_file) if s.routing_file else None  # a mounted ConfigMap
    routing = RoutingCache(
        client, s.routing_key, s.variant_salt, reader=reader, default=default_table(s.ranker_split)
    )
    t = cfg.triton
    score_ms = s.deadline_ms("scorer/triton_ranker")  # the ranker stage's own deadline
    ranker = TritonRankerClient(
        t.ranker_target, t.model_name, score_ms / 1000, routing.version_for_variant,
        breaker=CircuitBreaker.of(s, "ranker"), answered_variant=routing.answered_variant,
        channel_options=ranker_channel_options(t),  # round-robin over the target's addresses
    )  # fmt: skip
    local: LocalRetrieval | None = None
    if retrieval is None:
        retrieval = local = LocalRetrieval(state, s)
    deps = PipelineDeps(
        retrieval=retrieval,
        features=features,
        ranker=ranker,
        impressions=RedisStreamImpressionSink(
            client,
            s.impression_stream,
            IMPRESSION_MAXLEN,
            pseudonyms=pseudonyms,
            breaker=CircuitBreaker.of(s, "impressions"),
        ),
        head_weights=cfg.ranking.head_weights,
        popular=PopularList(retrieval, s.popular_refresh_s, s.popular_k),
    )
    surfaces = {
        "home": home_surface(deps, s),
        "related": related_surface(deps, s),
        "trending": trending_surface(deps, s),
        "category": category_surface(deps, s),
    }

    def models() -> dict[str, Any]:
        return {
            "ranker": {"triton_model": t.model_name, "routing": routing.cached.to_json()},
            "manifest": dataclasses.asdict(state.manifest),
        }

    service = RecommendationService(
        PipelineRunner(observer, s),
        surfaces,
        routing.table,
        time.time if s.clock == "wall" else lambda: state.clock_ms() / 1000,
        salt=s.variant_salt,
        observer=observer,
        models=models,
        raise_bugs=raise_bugs,
    )
    writer = RedisStreamEventWriter(
        client,
        s.event_stream_prefix,
        s.event_partitions,
        max_stream_len=cfg.events.max_stream_len,
        retry_after_s=cfg.events.retry_after_s,
        breaker=CircuitBreaker.of(s, "events"),
    )
    intake = EventIntake(writer, earliest_ms=s.earliest_event_ms)
    # The process that owns the index keeps it live (remote mode: the Retrieval service).
    cold_start = None if local is None else keep_live(cfg, state, client, local, store, observer)
    n = cfg.features.n_buckets
    eraser = Eraser(client, pseudonyms, n, cfg.events.tombstone_key)
    api = Api(service, intake, observer, cold_start, Guard.from_config(s), eraser,
              BodyLimits.of(s))  # fmt: skip
    # Everything built so far lives as long as the process: move it out of the collector's
    # reach. A full collection walking it took 50-75 ms (the state alone), the stalls behind
    # the soak's p99 (docs/benchmarks.md); frozen, later collections see only request garbage.
    if s.gc_freeze:
        gc.collect()
        gc.freeze()
    return api


def keep_live(
    cfg: Config,
    state: ServingState,
    client: redis.Redis | RedisCluster,
    local: LocalRetrieval,
    store: OnlineStore,
    observer: PrometheusObserver | None = None,
) -> ColdStart | None:
    """Background work of the process that owns the index: new uploads join it (cold start,
    its dead letters counted in ``observer``'s metrics when given), and trending follows the event
    processor's per-region sets."""
    trending = TrendingSets(client, Decay.of(cfg.events))
    LiveTrending(trending, state, cfg.data.regions, cfg.serving.trending_k).start()
    stream = videos_stream(cfg.serving.event_stream_prefix)
    counted = None if observer is None else observer.dead_lettered
    return launch(state, client, stream, local, store, cfg.events, counted)
