"""vidrec load test: HTTP, gRPC and direct-Triton users, gated on the latency SLA.

    locust -f load_tests/locustfile.py --headless -u 8 -r 8 -t 30s \\
        --host http://127.0.0.1:3000 --csv runs/loadtest/run --html runs/loadtest/run.html \\
        HttpApiUser                      # class names: HttpApiUser, GrpcApiUser, TritonUser

Users (pick them by class name; with none named, Locust runs all three):
- ``HttpApiUser``: the public HTTP API with a realistic mix (``--mix``, default home 70 %,
  related 15 %, trending 5 %, engagement events 10 %) over real user and video ids
  (``--users-file``, written by ``vidrec`` from the dataset and the simulated log);
- ``GrpcApiUser``: the same mix over ``vidrec.v1.Recommender`` at ``--grpc-host``;
- ``TritonUser``: the ranker itself over KServe V2 gRPC at ``--triton-url`` (batch
  ``--triton-batch``, input width read from the served model's config).

SLA gate (``--sla-p99-ms``, default 100; ``--sla-fail-ratio``, default 0.001;
``--sla-degraded-ratio``, default 0.01): when Locust quits, p99 and the failure ratio of all
requests and the share of recommendation answers served ``degraded`` decide the exit code (0
pass, 3 broken). A degraded answer (a 200 whose body, or a gRPC reply whose field, says
``degraded``) is no Locust failure: the users flag it in the request event's context and the
per-second recorder counts it. With ``--csv PREFIX`` Locust writes its CSVs and this file adds
``PREFIX_summary.json`` (per-second timeline, accepted event ids, degraded and answer counts,
verdict) and ``PREFIX_latency.png``.
``VIDREC_API_KEY`` (or ``--api-key``) is sent as ``Authorization: Bearer <key>`` (HTTP) and
``authorization`` metadata (gRPC) when set. The logic lives in :mod:`vidrec_dev.loadtest`.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # before any channel exists: gRPC must yield to gevent

import grpc  # noqa: E402
from locust import FastHttpUser, User, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from vidrec_dev.loadtest import mix as mixes  # noqa: E402
from vidrec_dev.loadtest.sla import (  # noqa: E402
    DEFAULT_DEGRADED_RATIO,
    DEFAULT_FAIL_RATIO,
    DEFAULT_P99_MS,
    EXIT_SLA_BROKEN,
    Sla,
    judge,
)
from vidrec_dev.loadtest.timeline import Recorder, RunSummary, share  # noqa: E402
from vidrec_dev.loadtest.workload import EventMaker, Workload, load_workload, query  # noqa: E402

log = logging.getLogger("vidrec_dev.loadtest")
REC_PATH = "/api/v1/recommendations/"
EVENTS_PATH = "/api/v1/events/engagement"
SERVER_GRPC_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


class State:
    """What this Locust process shares between users (set up by the ``init`` hook)."""

    recorder = Recorder()
    workload: Workload
    mix: dict[str, float] = mixes.parse_mix(None)
    events: EventMaker
    accepted: list[tuple[str, int]] = []  # noqa: RUF012 (shared on purpose)
    api_key: str = ""
    started_at = time.time()
    users = 0  # the user count once spawning completed


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_: Any) -> None:
    State.users = user_count


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    g = parser.add_argument_group("vidrec")
    g.add_argument("--sla-p99-ms", type=float, default=DEFAULT_P99_MS, help="SLA: p99 limit (ms)")
    g.add_argument(
        "--sla-fail-ratio", type=float, default=DEFAULT_FAIL_RATIO, help="SLA: failure ratio limit"
    )
    g.add_argument(
        "--sla-degraded-ratio",
        type=float,
        default=DEFAULT_DEGRADED_RATIO,
        help="SLA: limit on the share of recommendation answers served degraded",
    )
    g.add_argument("--mix", default="", help="home=70,related=15,trending=5,events=10")
    g.add_argument("--users-file", default="", help="workload JSON (vidrec_dev.loadtest.workload)")
    g.add_argument("--think-ms", type=float, default=500.0, help="mean wait between requests")
    g.add_argument("--grpc-host", default="127.0.0.1:50051", help="vidrec gRPC API host:port")
    g.add_argument("--triton-url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    g.add_argument("--triton-model", default="ranker", help="Triton model name")
    g.add_argument("--triton-batch", type=int, default=500, help="rows per Triton request")
    g.add_argument("--api-key", default="", help="bearer token (default: $VIDREC_API_KEY)")
    g.add_argument("--run-tag", default="", help="prefix of posted event ids")
    g.add_argument("--summary-file", default="", help="summary JSON (default: CSV prefix)")
    g.add_argument("--plot-file", default="", help="latency PNG (default: CSV prefix)")
    g.add_argument("--timeout-s", type=float, default=10.0, help="client timeout per request")


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None:  # used as a library (no command line): defaults
        State.workload = load_workload(None)
        State.events = EventMaker(State.workload, f"lt-{os.getpid()}")
        return
    try:
        _sla(environment)
        State.mix = mixes.parse_mix(opts.mix)
        State.workload = load_workload(opts.users_file or None)
    except ValueError as exc:
        log.error("%s", exc)
        sys.exit(2)
    tag = opts.run_tag or f"lt{int(time.time())}"
    State.events = EventMaker(State.workload, f"{tag}-{os.getpid()}")
    State.api_key = opts.api_key or os.environ.get("VIDREC_API_KEY", "")
    State.started_at = time.time()
    log.info(
        "mix: %s; %d users, %d videos",
        mixes.describe(State.mix),
        len(State.workload.users),
        len(State.workload.videos),
    )


def _sla(environment: Environment) -> Sla:
    opts = environment.parsed_options
    if opts is None:
        return Sla()
    return Sla(opts.sla_p99_ms, opts.sla_fail_ratio, opts.sla_degraded_ratio)


@events.request.add_listener
def _record(
    response_time: float, exception: Any, context: dict[str, Any], response: Any = None, **_: Any
) -> None:
    status = getattr(response, "status_code", None) or 0
    server_error = status >= 500 or bool(context.get("server_error"))
    failed = exception is not None
    State.recorder.record(
        time.time(),
        response_time,
        failed,
        server_error,
        bool(context.get("degraded")),
        bool(context.get("answer")) and not failed,
    )


def _think(user: User) -> float:
    opts = user.environment.parsed_options
    mean = (opts.think_ms if opts is not None else 500.0) / 1000
    return random.uniform(0.5 * mean, 1.5 * mean)


class HttpApiUser(FastHttpUser):
    """The public HTTP API: recommendations and engagement events, by the mix."""

    wait_time = _think

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        if opts is not None:
            self.client.network_timeout = self.client.connection_timeout = opts.timeout_s
        self.headers = {"Authorization": f"Bearer {State.api_key}"} if State.api_key else {}
        self.rng = random.Random()

    @task
    def request(self) -> None:
        kind = mixes.pick(self.rng, State.mix)
        if kind == "events":
            self._post_events()
        else:
            self._recommend(kind)

    def _recommend(self, kind: str) -> None:
        params = query(kind, self.rng, State.workload)
        with self.client.get(
            REC_PATH + kind,
            params=params,
            headers=self.headers,
            name=kind,
            catch_response=True,
            context={"answer": True},
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:120]}")
                return
            try:
                body = resp.json()
            except ValueError:
                resp.failure("not JSON")
                return
            if not body.get("items"):
                resp.failure("no items")
            resp.request_meta["context"]["degraded"] = bool(body.get("degraded"))

    def _post_events(self) -> None:
        batch = State.events.batch(self.rng, time.time_ns() // 1_000_000)
        with self.client.post(
            EVENTS_PATH, json=batch, headers=self.headers, name="events", catch_response=True
        ) as resp:
            if resp.status_code != 202:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:120]}")
                return
            accepted = int(resp.json().get("accepted", 0))
            if accepted != len(batch):
                resp.failure(f"accepted {accepted} of {len(batch)}")
            else:
                State.accepted.extend((e["event_id"], e["user_id"]) for e in batch)


def _fire(
    user: User,
    rtype: str,
    name: str,
    start: float,
    length: int,
    exc: Exception | None,
    context: dict[str, Any],
) -> None:
    user.environment.events.request.fire(
        request_type=rtype,
        name=name,
        response_time=(time.perf_counter() - start) * 1000,
        response_length=length,
        exception=exc,
        context=context,
    )


class GrpcApiUser(User):
    """``vidrec.v1.Recommender`` over gRPC: Recommend and LogEvents, by the same mix."""

    wait_time = _think

    def on_start(self) -> None:
        from vidrec.api.proto import recommender_pb2, recommender_pb2_grpc

        opts = self.environment.parsed_options
        self.pb = recommender_pb2
        self.timeout_s = opts.timeout_s if opts is not None else 10.0
        self.channel = grpc.insecure_channel(opts.grpc_host if opts else "127.0.0.1:50051")
        self.stub = recommender_pb2_grpc.RecommenderStub(self.channel)
        self.metadata = (("authorization", f"Bearer {State.api_key}"),) if State.api_key else ()
        self.rng = random.Random()

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def request(self) -> None:
        kind = mixes.pick(self.rng, State.mix)
        start = time.perf_counter()
        context: dict[str, Any] = {"answer": kind != "events"}
        exc: Exception | None = None
        length = 0
        batch: list[dict[str, Any]] = []
        try:
            if kind == "events":
                batch = State.events.batch(self.rng, time.time_ns() // 1_000_000)
                reply = self.stub.LogEvents(
                    self.pb.EventBatch(events=[self.pb.EngagementEvent(**e) for e in batch]),
                    timeout=self.timeout_s,
                    metadata=self.metadata,
                )
                if reply.accepted != len(batch):
                    exc = RuntimeError(f"accepted {reply.accepted} of {len(batch)}")
            else:
                q = query(kind, self.rng, State.workload)
                answer = self.stub.Recommend(
                    self.pb.RecommendRequest(surface=kind, **q),
                    timeout=self.timeout_s,
                    metadata=self.metadata,
                )
                context["degraded"] = answer.degraded
                if not answer.items:
                    exc = RuntimeError("no items")
            length = 1
        except grpc.RpcError as err:
            exc = err
            context["server_error"] = err.code() in SERVER_GRPC_CODES  # type: ignore[attr-defined]
        if exc is None and batch:
            State.accepted.extend((e["event_id"], e["user_id"]) for e in batch)
        _fire(self, "grpc", kind, start, length, exc, context)


class TritonUser(User):
    """The ranker alone, over KServe V2 gRPC (what the Recommender's scorer sends)."""

    wait_time = _think

    def on_start(self) -> None:
        import numpy as np
        import tritonclient.grpc as tc

        opts = self.environment.parsed_options
        self.tc = tc
        self.model = opts.triton_model if opts else "ranker"
        self.timeout_s = opts.timeout_s if opts is not None else 10.0
        self.client = tc.InferenceServerClient(opts.triton_url if opts else "127.0.0.1:8001")
        config = self.client.get_model_config(self.model).config
        width = int(config.input[0].dims[-1])
        rows = min(opts.triton_batch if opts else 500, int(config.max_batch_size) or 500)
        self.input_name = config.input[0].name
        self.output = tc.InferRequestedOutput(config.output[0].name)
        self.x = np.random.default_rng().random((rows, width), dtype=np.float32)

    @task
    def infer(self) -> None:
        start = time.perf_counter()
        context: dict[str, Any] = {}
        exc: Exception | None = None
        try:
            inp = self.tc.InferInput(self.input_name, list(self.x.shape), "FP32")
            inp.set_data_from_numpy(self.x)
            self.client.infer(
                self.model, [inp], outputs=[self.output], client_timeout=self.timeout_s
            )
        except Exception as err:  # InferenceServerException: UNAVAILABLE, timeouts, ...
            exc = err
            context["server_error"] = "UNAVAILABLE" in str(err) or "INTERNAL" in str(err)
        _fire(self, "grpc", f"{self.model}.infer", start, int(self.x.nbytes), exc, context)


@events.quitting.add_listener
def _gate(environment: Environment, **_: Any) -> None:
    """The SLA gate: p99 and failure ratio of every request and the degraded share of the
    recommendation answers → the process exit code."""
    opts = environment.parsed_options
    sla = _sla(environment)
    total = environment.stats.total
    p99 = float(total.get_response_time_percentile(0.99) or 0.0)
    timeline = State.recorder.timeline()
    degraded = sum(s.degraded for s in timeline)
    answers = sum(s.answers for s in timeline)
    verdict = judge(
        p99, total.fail_ratio, total.num_requests, sla, degraded_ratio=share(degraded, answers)
    )
    environment.process_exit_code = 0 if verdict.passed else EXIT_SLA_BROKEN
    log.warning("%s (SLA: %s)", verdict.describe(), sla.describe())
    prefix = getattr(opts, "csv_prefix", None) if opts is not None else None
    summary_file = (opts.summary_file if opts else "") or (
        f"{prefix}_summary.json" if prefix else ""
    )
    plot_file = (opts.plot_file if opts else "") or (f"{prefix}_latency.png" if prefix else "")
    if not summary_file and not plot_file:
        return
    ended = time.time()
    summary = RunSummary(
        sla=sla,
        verdict=verdict,
        users=State.users,
        started_at=State.started_at,
        ended_at=ended,
        requests=total.num_requests,
        failures=total.num_failures,
        p50_ms=float(total.get_response_time_percentile(0.5) or 0.0),
        p99_ms=p99,
        rps=total.num_requests / max(ended - State.started_at, 1e-9),
        by_name={
            f"{e.method} {e.name}": {
                "requests": e.num_requests,
                "failures": e.num_failures,
                "p50_ms": float(e.get_response_time_percentile(0.5) or 0.0),
                "p99_ms": float(e.get_response_time_percentile(0.99) or 0.0),
            }
            for e in environment.stats.entries.values()
        },
        accepted_events=State.accepted,
        timeline=timeline,
        exit_code=environment.process_exit_code,
        degraded=degraded,
        answers=answers,
    )
    if summary_file:
        summary.save(Path(summary_file))
    if plot_file:
        from vidrec_dev.loadtest.report import plot_timeline

        plot_timeline(summary.timeline, Path(plot_file), sla=sla, title=verdict.describe())
