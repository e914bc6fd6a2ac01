"""All vidrec settings in one place.

Every field has a default that works on a laptop. Any field can be overridden from the
environment as ``VIDREC_<SECTION>__<FIELD>`` (e.g. ``VIDREC_REDIS__MAX_CONCURRENCY=16``);
Helm values become those variables in the chart. Components receive the section they need
instead of reading the environment themselves, so tests can build configs explicitly.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_kuairec_dir() -> Path:
    # The dataset is committed under data/kuairec so that a fresh clone needs nothing else.
    return REPO_ROOT / "data" / "kuairec"


@dataclass(frozen=True)
class DataConfig:
    kuairec_dir: Path = field(default_factory=_default_kuairec_dir)
    # KuaiRec has no regions or devices: the simulator derives them from the user id.
    regions: tuple[str, ...] = ("north", "south", "east", "west", "central")
    devices: tuple[str, ...] = ("android", "ios", "web")
    # `--dataset DIR` (docs/datasets.md): a real log has a few bad rows; these are skipped and
    # reported, up to this share of the interactions each; more is an error naming the file.
    max_unknown_item_share: float = 0.01  # interactions whose item is not in items.*
    max_unknown_user_share: float = 0.01  # interactions whose user is not in users.*
    max_before_upload_share: float = 0.01  # interactions before their item's upload_ts
    max_duplicate_share: float = 0.05  # repeated (user, item, ts, event[, request_id]) rows
    # User feature columns that are strings: one slot per value up to this many values, else
    # hashed into `user_hash_buckets` slots (every value lands somewhere; none is dropped).
    user_onehot_max: int = 32
    user_hash_buckets: int = 32
    default_duration_ms: int = 60_000  # items with no duration_ms and no watch to bound it


@dataclass(frozen=True)
class FeatureConfig:
    # Redis hash-tag buckets: keys `vf:{b<k>}:<id>`, one slot per bucket, one MGET per bucket
    # on a 500-key read. Fewer buckets = fewer commands (client and server CPU), but a bucket
    # never spans masters: keep several per master. 24 puts exactly 8 on each of 3 masters
    # (4 on each of 6) with the default slot ranges (`benchmarks/hydration_profile.py` times
    # a cold read per bucket count; docs/benchmarks.md). Writers and readers must agree:
    # changing it means materialising the vectors again (`vidrec serve prepare`).
    n_buckets: int = 24
    history_len: int = 20  # recent watches kept per user (two-tower history, cross features)
    ctr_prior_impressions: float = 50.0  # Beta-prior strength (pseudo-impressions) for CTRs
    ctr_prior_mean: float = 0.1  # Beta-prior mean: the CTR of a video nobody has seen yet
    long_view_ratio: float = 0.7  # watch ratio at or above which a view is "long"


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = True
    max_concurrency: int = 32  # redis.asyncio cluster fails under ~200 concurrent calls
    socket_timeout_s: float = 0.5
    batch_size: int = 500  # keys per pipeline write during materialisation
    # AUTH and TLS (vidrec.security.redis_conn): every client the code builds uses them.
    username: str = ""  # ACL user ("" = the default user)
    password: str = field(default="", repr=False)  # "" = no AUTH
    tls: bool = False  # rediss:// semantics whatever the URL scheme says
    tls_ca_file: str = ""  # CA bundle that signed the server certificate ("" = system CAs)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 7
    device: str = "cpu"
    # Quality gate: the new model must beat the baseline by this relative margin.
    gate_margin: float = 0.05
    # Evaluation (vidrec.models.splits, vidrec.models.evaluate): the --split spec, and the
    # filtered protocol (training history removed from ranked lists) unless false.
    eval_split: str = "auto"
    eval_filter_seen: bool = True
    embedding_dim: int = 32
    threads: int = 2


@dataclass(frozen=True)
class RankingConfig:
    heads: tuple[str, ...] = ("p_click", "p_long_view", "p_like")
    head_weights: tuple[float, ...] = (1.0, 2.0, 0.5)
    max_batch_size: int = 1024  # Triton never splits a request: >= largest candidate set
    preferred_batch_sizes: tuple[int, ...] = (256, 512, 1024)
    max_queue_delay_us: int = 2000
    cpu_instances: int = 2
    trt_opt_batch: int = 512
    trt_fp16: bool = True


@dataclass(frozen=True)
class TritonConfig:
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_name: str = "ranker"
    # The serving client's gRPC target, any gRPC target string: "" = host:grpc_port. One
    # channel per process balances per request only over the addresses the target resolves
    # to: in the cluster dns:///<release>-triton-headless.<ns>.svc.cluster.local:8001 (every
    # ready Triton pod), locally a static "ipv4:127.0.0.1:8001,127.0.0.1:8011".
    grpc_target: str = ""
    grpc_lb_policy: str = "round_robin"  # pick_first would pin the process to one address
    # Floor between DNS re-resolutions; gRPC re-resolves when a connection drops (a pod gone,
    # or Triton's --grpc-max-connection-age closing it), not on a timer.
    grpc_dns_min_resolution_ms: int = 5000
    # A connection silent for keepalive_ms while calls are in flight is pinged; no answer in
    # keepalive_timeout_ms fails it, so a pod gone without closing its sockets leaves the
    # rotation (no pings on idle connections: Triton's defaults would refuse them).
    grpc_keepalive_ms: int = 30000
    grpc_keepalive_timeout_ms: int = 5000

    @property
    def ranker_target(self) -> str:
        """The gRPC target the serving ranker client dials (``grpc_target`` or host:port)."""
        return self.grpc_target or f"{self.host}:{self.grpc_port}"


DEADLINE_OF_KIND = {
    "context": "deadline_context_ms",
    "source": "deadline_sources_ms",
    "filter": "deadline_filters_ms",
    "hydrator": "deadline_hydrate_ms",
    "scorer": "deadline_score_ms",
    "mixer": "deadline_mix_ms",
    "effect": "deadline_effect_ms",
    "fallback": "deadline_fallback_ms",
}
"""The ``ServingConfig`` field holding each stage kind's deadline budget."""


@dataclass(frozen=True)
class ServingConfig:
    """The request path. Deadlines are per stage, in milliseconds; the SLA is p99 < 100 ms."""

    artefacts_dir: Path = field(default_factory=lambda: REPO_ROOT / "artifacts" / "demo")
    # Candidate counts per source: two-tower ~400, the union capped at 1,000.
    two_tower_k: int = 400
    related_k: int = 100
    # Item-item neighbours precomputed per video with the index (`vidrec build`); serving
    # gathers from them when neighbours_k >= related_k and searches the index otherwise.
    neighbours_k: int = 100
    neighbours_symmetric: bool = True  # an upload also enters the lists of videos it is near
    faiss_threads: int = 1  # OpenMP threads for FAISS in serving; offline builds use all cores
    trending_k: int = 100
    fresh_k: int = 50
    same_creator_k: int = 50
    max_candidates: int = 1000
    # Modules of your own that register candidate sources (docs/architecture.md, "Add a
    # candidate source"), imported where retrieval runs; the built-in ones always are.
    source_modules: tuple[str, ...] = ()
    rank_top_n: int = 500  # candidates sent to the ranker (by retrieval score)
    # Deadlines (ms): the one source of truth. One budget per stage kind; a stage given its
    # own by its id in stage_deadlines_ms ("<kind>/<name>=<ms>", comma-separated in the env,
    # e.g. "scorer/triton_ranker=60,source/two_tower=40") keeps that one instead.
    deadline_context_ms: int = 15
    deadline_sources_ms: int = 30
    deadline_filters_ms: int = 5
    deadline_hydrate_ms: int = 20
    deadline_score_ms: int = 40
    deadline_mix_ms: int = 5
    deadline_effect_ms: int = 200  # after the response: off the request path
    deadline_fallback_ms: int = 20
    deadline_total_ms: int = 95
    # Admission (vidrec.pipeline.runner): at most max_inflight requests run the pipeline at
    # once per process (0 = no limit); the others queue, at most deadline_queue_ms, before
    # any stage deadline starts, then are shed to the fallback.
    max_inflight: int = 4
    deadline_queue_ms: int = 60
    stage_deadlines_ms: tuple[str, ...] = ()
    # Circuit breakers: open after N consecutive failures, try again after reset_s. These
    # are every dependency's; breakers ("<dependency>=<failures>/<reset_s>", e.g.
    # "ranker=3/2.5") overrides one of features, ranker, impressions, events.
    breaker_failures: int = 5
    breaker_reset_s: float = 5.0
    breakers: tuple[str, ...] = ()
    # Hot-video LRU in front of the feature store.
    lru_size: int = 50_000
    # Post-ranking.
    max_creator_run: int = 2
    exploration_share: float = 0.1  # share of slots for fresh videos
    freshness_half_life_h: float = 24.0
    freshness_boost: float = 0.2
    fresh_max_age_h: float = 48.0
    default_region: str = "central"
    category_max_share: float = 0.4  # of the first page from one category
    popular_refresh_s: float = 60.0  # the cached popular list (last-resort fallback)
    popular_k: int = 200
    # Variants: the routing table lives in Redis under this key (the operator writes it).
    routing_key: str = "vidrec:routing:ranker"
    # The routing table from a file instead (a ConfigMap the gateway-table-configmap router
    # writes, mounted by the chart); "" = the Redis key above.
    routing_file: str = ""
    # Who splits the ranker traffic before any table is published: "serving" (the
    # gateway-table routers) or "upstream" (the ranker is reached through KServe or a Gateway,
    # which pick the replica: serving then asks Triton for no version).
    ranker_split: str = "serving"
    # Freeze the objects built at startup out of the garbage collector's full collections
    # (gc.freeze): they stalled requests for 50+ ms. False only to measure the difference.
    gc_freeze: bool = True
    # Before it reports ready, a serving process runs requests through its own surfaces until
    # they answer undegraded (vidrec.api.warmup), at most this long; 0 = no warm-up.
    warmup_s: float = 30.0
    variant_salt: str = "vidrec-variants-v1"
    # "local": the Recommender holds the ANN index and rule tables (fastest: no hop);
    # "remote": it composes the Retrieval service with bentoml.depends(url=retrieval_url),
    # which then scales on its own (one local HTTP hop per source).
    retrieval_mode: str = "local"
    # Who serves the recommender's HTTP API: "uvicorn" (vidrec.api.http_server: the app with
    # nothing around it, 16-27 % less CPU per request, docs/benchmarks.md) or "bentoml" (the
    # Recommender service: BentoML's middlewares and /metrics, bentos).
    http_host: str = "uvicorn"
    # Service endpoints (the local stack and the Helm chart set these).
    retrieval_url: str = "http://127.0.0.1:3001"
    recommender_port: int = 3000
    retrieval_port: int = 3001
    features_port: int = 3002
    grpc_port: int = 50051
    grpc_metrics_port: int = 9464
    impression_stream: str = "vidrec:impressions"
    event_stream_prefix: str = "vidrec:events"
    event_partitions: int = 16  # event streams per prefix; a user's events stay in one
    # Public API security (vidrec.security). Empty = off: the local-dev default; the chart
    # turns auth on from a Secret. Keys and JWTs travel as `Authorization: Bearer <token>`.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    jwt_secret: str = field(default="", repr=False)  # HS256 shared secret; "" = JWT off
    jwt_audience: str = ""  # required `aud` claim when set
    # Fail closed: with require_auth, a process without api_keys or jwt_secret refuses to
    # start instead of serving everyone (the chart sets it whenever auth.enabled).
    require_auth: bool = False
    # Per-client token bucket (client = API key / JWT sub / remote address); 0 = off.
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 0  # bucket size; 0 = 2 x rate_limit_per_s
    # Hostile input (vidrec.api.body): a JSON body over max_body_bytes is a 413 before it is
    # read in full (a 1,000-event batch is ~250 KB); one nested deeper than max_json_depth is
    # a 400 before it is parsed (the parser's recursion would otherwise be a 500). The API's
    # bodies nest 2 deep.
    max_body_bytes: int = 1 << 20
    max_json_depth: int = 16
    # Event and upload timestamps (epoch ms) before this are refused (2000-01-01 UTC); any
    # below 1e11 is named as seconds. The upper bound is schema.MAX_FUTURE_SKEW_MS past now.
    earliest_event_ms: int = 946_684_800_000
    # Serving "now": "log" = the end of the artefact's event log (demo, tests: the simulated
    # log is in 2020); "wall" = the wall clock (production, fed by the live event stream).
    clock: str = "log"

    def deadline_ms(self, stage: str) -> int:
        """The deadline of stage ``"<kind>/<name>"``: its own override, else its kind's."""
        own = self._stage_overrides.get(stage)
        return own if own is not None else int(getattr(self, DEADLINE_OF_KIND[stage.split("/")[0]]))

    @cached_property
    def _stage_overrides(self) -> dict[str, int]:
        return self.stage_deadline_ms()

    def stage_deadline_ms(self) -> dict[str, int]:
        """``stage_deadlines_ms`` as ``{"<kind>/<name>": ms}``; a bad entry names the field."""
        out: dict[str, int] = {}
        for entry in self.stage_deadlines_ms:
            stage, _, ms = entry.partition("=")
            if "/" not in stage or not ms.strip().isdigit() or int(ms) < 1:
                raise ValueError(
                    f"serving.stage_deadlines_ms: {entry!r} is not '<kind>/<name>=<ms>' "
                    "(e.g. 'scorer/triton_ranker=60')"
                )
            out[stage.strip()] = int(ms)
        return out

    def breaker(self, dependency: str) -> tuple[int, float]:
        """``(failures, reset_s)`` of one dependency's circuit breaker."""
        for entry in self.breakers:
            name, _, value = entry.partition("=")
            if name.strip() != dependency:
                continue
            failures, _, reset = value.partition("/")
            try:
                n, r = int(failures), float(reset)
            except ValueError:
                n, r = 0, 0.0
            if n < 1 or r <= 0:
                raise ValueError(
                    f"serving.breakers: {entry!r} is not '<dependency>=<failures>/<reset_s>' "
                    "(e.g. 'ranker=3/2.5')"
                )
            return n, r
        return self.breaker_failures, self.breaker_reset_s


@dataclass(frozen=True)
class EventsConfig:
    """The event path: the real-time processor and the lake writer (consumer groups)."""

    processor_group: str = "realtime"
    lake_group: str = "lake"
    read_count: int = 200  # entries per stream per XREADGROUP
    block_ms: int = 1000  # how long one read waits for new entries
    claim_min_idle_ms: int = 60_000  # pending this long on a dead consumer -> XAUTOCLAIM
    claim_every_s: float = 30.0  # how often a live consumer looks for stale entries
    dedupe_ttl_s: int = 7 * 24 * 3600  # event-id markers outlive any redelivery
    trending_half_life_h: float = 6.0  # the same half-life as the offline trending table
    trending_epoch_h: float = 168.0  # the score base moves every epoch (exp stays finite)
    trending_keep: int = 5000  # videos kept per region and epoch
    lake_dir: Path = field(default_factory=lambda: REPO_ROOT / "runs" / "lake")
    lake_max_events: int = 10_000  # flush the lake buffer at this many events ...
    lake_max_age_s: float = 60.0  # ... or when its oldest event has waited this long
    processor_metrics_port: int = 9465
    lake_metrics_port: int = 9466
    max_stream_len: int = 500_000  # per partition: above it, intake answers 429
    retry_after_s: int = 1
    # Privacy (vidrec.security): user ids become HMAC-SHA256(id_salt, id) before the lake and
    # logs ("" = ids kept as they are: local dev); the lake is Parquet-encrypted with lake_key
    # (hex or base64, 128/192/256-bit; "" = plaintext). Both come from Secrets in the chart.
    id_salt: str = field(default="", repr=False)
    lake_key: str = field(default="", repr=False)
    tombstone_key: str = "vidrec:tombstones"  # Redis hash: pseudonymous id -> deleted at (ms)
    # Entries a consumer cannot apply go to dead:{dl:<group>} (vidrec.contracts.dead_letters),
    # trimmed to about this many; cold start (plain XREAD, no group) dead-letters as its group.
    dead_letter_maxlen: int = 100_000
    coldstart_group: str = "coldstart"


@dataclass(frozen=True)
class RolloutConfig:
    """The rollout operator: how often it ticks and where it reads metrics / loads models."""

    tick_s: float = 5.0
    prometheus_url: str = ""  # "" → the local stack's Prometheus (stack.prometheus_port)
    triton_url: str = ""  # "" → model versions are managed elsewhere (e.g. KServe)
    # [namespace/]Service whose every ready endpoint gets the versions (EndpointSlices); wins
    # over triton_url, which reaches one pod per request. A bare name: the rollout's namespace.
    triton_service: str = ""
    metrics_port: int = 9470  # the operator's own /metrics (vidrec_rollout_*); 0 = off
    # Transitions also go to a chat webhook ("slack" / "webhook": {"text": ...}); "" = Events only.
    notifier: str = ""
    notifier_url: str = field(default="", repr=False)  # webhook URLs are credentials


@dataclass(frozen=True)
class StackConfig:
    run_dir: Path = field(default_factory=lambda: REPO_ROOT / "runs" / "local")
    redis_cluster: bool = True
    redis_base_port: int = 7001  # cluster masters take base..base+2; standalone takes base
    prometheus_port: int = 9090
    # Every scrape costs each service an exposition; 10 s keeps an idle stack idle and still
    # gives rollout analyses of a minute six points (tests scrape every second).
    scrape_interval_s: float = 10.0
    start_timeout_s: float = 90.0


@dataclass(frozen=True)
class BenchConfig:
    """`vidrec bench serving` runs a stack of its own, so it can run beside `make up`."""

    # Its ports are a block from here (Redis Cluster masters first, their bus ports +10000);
    # 0 = a block that is free when the bench starts.
    base_port: int = 0


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    triton: TritonConfig = field(default_factory=TritonConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    stack: StackConfig = field(default_factory=StackConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)


T = TypeVar("T")


def _coerce(raw: str, typ: Any, name: str) -> Any:
    """Parse an environment string into the field's declared type, naming the field on error."""
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true/false")
        if typ in (int, float, str):
            return typ(raw)
        if typ is Path:
            return Path(raw)
        if origin is tuple:
            (inner, *_) = typing.get_args(typ)
            return tuple(_coerce(p.strip(), inner, name) for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r}: {exc}") from exc
    raise TypeError(f"{name}: unsupported config type {typ!r}")


def _override(section: T, prefix: str, env: typing.Mapping[str, str]) -> T:
    hints = typing.get_type_hints(type(section))
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        name = f"{prefix}__{f.name.upper()}"
        if name in env:
            changes[f.name] = _coerce(env[name], hints[f.name], name)
    return dataclasses.replace(section, **changes) if changes else section  # type: ignore[type-var]


def load_config(env: typing.Mapping[str, str] | None = None) -> Config:
    """Defaults overridden by ``VIDREC_<SECTION>__<FIELD>`` variables."""
    env = os.environ if env is None else env
    base = Config()
    return Config(
        **{
            f.name: _override(getattr(base, f.name), f"VIDREC_{f.name.upper()}", env)
            for f in dataclasses.fields(base)
        }
    )
