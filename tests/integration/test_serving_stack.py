"""The whole local stack, as `make up` starts it: Redis Cluster, Triton, the BentoML services,
the gRPC server and Prometheus, on free 127.0.0.1 ports — and what users rely on from it:
deterministic answers, not-interested respected, the diversity rule, and degraded-but-200
answers when Triton or a Redis master really dies.

Monitoring tells the truth: while the stack reports healthy, Prometheus has ``up == 1`` for
every scrape job, and an idle stack writes no error to any log. Schemathesis fuzzes the API
(``slow``: ≥ 100 valid and 100 invalid requests per operation, then linked sequences) with
every server up and again with Triton dead: no 5xx, and every service survives it.

Destructive tests (stopping Triton, then a Redis master) run last, in file order.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.fuzz_api import Tally, fuzz_operations, fuzz_stateful
from tests.integration.settings import SLOW_MACHINE, crash
from tests.integration.test_stack import free_ports, stack_config
from vidrec.backends.serving_state import ServingState
from vidrec.config import Config, RedisConfig
from vidrec.features import make_store
from vidrec.features.session import SessionStore
from vidrec.schema import RecommendationResponse
from vidrec_dev.stack import Stack, read_stack_state
from vidrec_dev.stack.health import TcpCheck
from vidrec_dev.stack.services import scrape_targets

pytestmark = pytest.mark.integration
USERS = (1, 2, 3, 5, 8, 13, 21, 34)
IDLE_S = 15.0  # the cold-start poll that used to fail at idle did so every ~6.6 s
# A line that reports a failure, in any service's log format: Python logging / BentoML
# ("ERROR", "CRITICAL", a traceback), Triton's glog ("E1205 12:00:00"), Prometheus (level=error).
LOG_ERROR = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|^E\d{4} |level=error", re.MULTILINE)
FUZZ_EXAMPLES = 100  # per operation and per mode (valid, invalid)
FUZZ_SCENARIOS, FUZZ_STEPS = 60, 8


def full_config(run_dir: Path) -> Config:
    cfg = stack_config(run_dir, cluster=True)
    taken: set[int] = set()
    rec, ret, feat, grpc_port, grpc_metrics, process, lake = free_ports(7, taken)
    events = dataclasses.replace(cfg.events, processor_metrics_port=process, lake_metrics_port=lake)
    serving = dataclasses.replace(
        cfg.serving,
        recommender_port=rec,
        retrieval_port=ret,
        features_port=feat,
        grpc_port=grpc_port,
        grpc_metrics_port=grpc_metrics,
    )
    return dataclasses.replace(cfg, serving=serving, events=events)


@pytest.fixture(scope="module")
def stack(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    saved = dict(os.environ)
    os.environ.update(SLOW_MACHINE | {"VIDREC_EVENTS__LAKE_MAX_AGE_S": "1"})
    cfg = full_config(tmp_path_factory.mktemp("full-stack"))
    s = Stack(cfg, artefacts)
    try:
        s.up(progress=False)
        yield s
    finally:
        s.down()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def api(stack: Stack) -> str:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    return state.url("recommender")


@pytest.fixture(scope="module")
def creators(artefacts: Path) -> dict[int, int]:
    cat = ServingState.load(artefacts).catalogue
    return dict(zip(cat.video_id.tolist(), cat.creator_id.tolist(), strict=True))


def home(api: str, user: int, count: int = 20) -> RecommendationResponse:
    resp = httpx.get(
        f"{api}/api/v1/recommendations/home", params={"user_id": user, "count": count}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    return RecommendationResponse.model_validate(resp.json())


def metric(api: str, name: str, **labels: str) -> float:
    """Sum of a counter's samples whose labels include ``labels``."""
    text = httpx.get(f"{api}/api/v1/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def unhealthy(stack: Stack, *allowed_down: str) -> list[str]:
    """Services the stack reports down or unhealthy, besides ``allowed_down``."""
    return [r.service for r in stack.settled_status() if not r.ok and r.service not in allowed_down]


def prometheus_targets(stack: Stack) -> list[dict[str, object]]:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    url = state.url("prometheus")
    body = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=10).json()
    targets: list[dict[str, object]] = body["data"]["activeTargets"]
    return targets


def up_by_job(stack: Stack) -> dict[str, float]:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    resp = httpx.get(f"{state.url('prometheus')}/api/v1/query", params={"query": "up"}, timeout=10)
    return {r["metric"]["job"]: float(r["value"][1]) for r in resp.json()["data"]["result"]}


def test_prometheus_sees_every_job_up_while_the_stack_reports_healthy(stack: Stack) -> None:
    assert not unhealthy(stack), "the stack does not report healthy"
    since = time.time()
    jobs = set(scrape_targets(stack.cfg))

    def scraped_since() -> bool:  # every job scraped after the stack said healthy
        targets = prometheus_targets(stack)
        last = {str(t["labels"]["job"]): str(t["lastScrape"]) for t in targets}  # type: ignore[index]
        return set(last) == jobs and all(_rfc3339(v) > since for v in last.values())

    poll(scraped_since, 10 * stack.cfg.stack.scrape_interval_s + 10)
    down = {
        str(t["labels"]["job"]): t["lastError"]  # type: ignore[index]
        for t in prometheus_targets(stack)
        if t["health"] != "up"
    }
    assert not down, f"the stack reports healthy but Prometheus cannot scrape: {down}"
    assert up_by_job(stack) == dict.fromkeys(jobs, 1.0)


def _rfc3339(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()  # nanoseconds are cut to microseconds


def log_sizes(stack: Stack) -> dict[str, int]:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    return {name: Path(svc.log).stat().st_size for name, svc in state.services.items()}


def errors_since(stack: Stack, sizes: dict[str, int]) -> dict[str, list[str]]:
    """Lines reporting a failure that each service logged after ``sizes`` was taken."""
    state = read_stack_state(stack.run_dir)
    assert state is not None
    found = {}
    for name, svc in state.services.items():
        with Path(svc.log).open("rb") as log:
            log.seek(sizes.get(name, 0))
            text = log.read().decode(errors="replace")
        lines = [m.group(0) for m in re.finditer(r"^.*$", text, re.MULTILINE)]
        bad = [line for line in lines if LOG_ERROR.search(line)]
        if bad:
            found[name] = bad[:5]
    return found


def test_an_idle_stack_logs_no_errors(stack: Stack) -> None:
    assert not unhealthy(stack)
    sizes = log_sizes(stack)
    time.sleep(IDLE_S)  # no traffic: only Prometheus scrapes and the services' own timers
    assert not errors_since(stack, sizes), "errors logged by an idle stack"
    assert not unhealthy(stack)


def test_home_is_deterministic_and_ranked(api: str) -> None:
    for user in USERS[:4]:
        first, second = home(api, user), home(api, user)
        assert not first.degraded, first.degraded_reasons
        assert [i.video_id for i in first.items] == [i.video_id for i in second.items]
        assert len(first.items) == 20
        assert all(i.scores and i.explanation for i in first.items)


def test_diversity_rule_holds_on_every_response(api: str, creators: dict[int, int]) -> None:
    for user in USERS:
        items = home(api, user, count=30).items
        owners = [creators[i.video_id] for i in items]
        runs = [owners[i : i + 3] for i in range(len(owners) - 2)]
        assert not any(len(set(r)) == 1 for r in runs), (user, owners)


def test_not_interested_video_and_creator_never_come_back(
    api: str, stack: Stack, creators: dict[int, int]
) -> None:
    user = USERS[5]
    before = home(api, user).items
    video, creator_video = before[0].video_id, before[1].video_id
    creator = creators[creator_video]
    state = read_stack_state(stack.run_dir)
    assert state is not None
    store = make_store(RedisConfig(url=state.env["VIDREC_REDIS__URL"], cluster=True))
    sessions = SessionStore(store)
    sessions.update(
        user,
        lambda s: dataclasses.replace(
            s,
            not_interested_videos=s.not_interested_videos | {video},
            not_interested_creators=s.not_interested_creators | {creator},
        ),
    )
    store.close()
    for _ in range(3):
        after = home(api, user, count=50).items
        assert video not in {i.video_id for i in after}
        assert creator not in {creators[i.video_id] for i in after}


def test_http_and_grpc_agree_on_the_full_stack(api: str, stack: Stack) -> None:
    import grpc

    from vidrec.api.proto import recommender_pb2 as pb
    from vidrec.api.proto import recommender_pb2_grpc as pb_grpc

    state = read_stack_state(stack.run_dir)
    assert state is not None
    with grpc.insecure_channel(state.url("grpc")) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        for user in USERS[:3]:
            rpc = stub.Recommend(pb.RecommendRequest(surface="home", user_id=user, count=15))
            http = home(api, user, count=15)
            assert [i.video_id for i in rpc.items] == [i.video_id for i in http.items]


def post_events(api: str, events: list[dict[str, object]]) -> dict[str, object]:
    resp = httpx.post(f"{api}/api/v1/events/engagement", json=events, timeout=30)
    assert resp.status_code == 202, resp.text
    body: dict[str, object] = resp.json()
    return body


def event(user: int, video: int, kind: str, ts: int, **extra: object) -> dict[str, object]:
    return {"event_id": f"t-{kind}-{user}-{video}-{ts}", "user_id": user, "video_id": video,
            "type": kind, "ts": ts, "surface": "home", **extra}  # fmt: skip


def poll(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until ``check()`` held; fails the test after ``within_s``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        time.sleep(0.2)
    return time.monotonic() - start


def test_a_posted_watch_shows_in_the_next_home_feed_within_5_s(api: str) -> None:
    user = USERS[6]
    watched = home(api, user).items[0].video_id
    now = int(time.time() * 1000)
    post_events(api, [event(user, watched, "click", now, position=0),
                      event(user, watched, "watch", now + 1, watch_ms=20_000,
                            video_duration_ms=15_000, position=0)])  # fmt: skip

    def reflected() -> bool:
        items = home(api, user).items
        gone = watched not in {i.video_id for i in items}
        related = any(i.explanation == f"because you watched {watched}" for i in items)
        return gone and related

    print(f"watch reflected in {poll(reflected, 5.0):.2f} s")


def test_not_interested_event_removes_video_and_creator_next_time(
    api: str, creators: dict[int, int]
) -> None:
    user = USERS[7]
    first = home(api, user, count=30).items
    video = first[0].video_id
    creator = creators[video]
    post_events(api, [event(user, video, "not_interested", int(time.time() * 1000))])

    def applied() -> bool:
        items = home(api, user, count=50).items
        return all(i.video_id != video and creators[i.video_id] != creator for i in items)

    poll(applied, 5.0)


def test_lake_holds_every_accepted_event_exactly_once(api: str, stack: Stack) -> None:
    from vidrec.events.event_log import read_events

    now = int(time.time() * 1000)
    batch = [event(u, v, "impression", now + i, position=i % 10)
             for i, (u, v) in enumerate((u, v) for u in USERS for v in range(5))]  # fmt: skip
    bad = [{"event_id": "broken", "user_id": -1, "video_id": 1, "type": "watch", "ts": now}]
    body = post_events(api, [*batch, *batch[:3], *bad])
    assert body["accepted"] == len(batch)
    lake = stack.run_dir / "lake"

    def landed() -> bool:
        if not lake.exists() or not any(lake.rglob("*.parquet")):
            return False
        ids = read_events(lake)["event_id"].to_list()
        return {e["event_id"] for e in batch} <= set(ids)

    poll(landed, 30.0)
    ids = read_events(lake)["event_id"].to_list()
    for e in batch:
        assert ids.count(e["event_id"]) == 1
    assert "broken" not in ids


def fuzz(api: str) -> Tally:
    """Every operation, then linked sequences; fails naming each request answered 5xx."""
    tally = Tally()
    failures = fuzz_operations(api, {}, FUZZ_EXAMPLES, tally)
    failures += fuzz_stateful(api, {}, FUZZ_SCENARIOS, FUZZ_STEPS, tally)
    print({op: dict(codes) for op, codes in tally.statuses.items()}, dict(tally.linked))
    assert not failures, "\n\n".join(failures[:10])
    assert tally.count(500, 600) == 0
    assert tally.count(200, 300) and tally.count(400, 500), "only one side of the contract ran"
    # An operation without input (health, metrics) has one request to make; Hypothesis stops.
    with_input = set(tally.statuses) - set(tally.no_invalid_input)
    assert len(with_input) >= 7, tally.statuses
    for operation in with_input:
        assert tally.total(operation) >= FUZZ_EXAMPLES, (operation, tally.statuses[operation])
    # The links fed later calls: a feed read for a user whose events were just posted.
    assert any(link.endswith("recommendations/home") and "engagement" in link
               for link in tally.linked), tally.linked  # fmt: skip
    return tally


def test_triton_down_still_answers_degraded_and_counts_it(api: str, stack: Stack) -> None:
    before = metric(api, "vidrec_degraded_total", stage="scorer/triton_ranker")
    state = read_stack_state(stack.run_dir)
    assert state is not None and state.services["triton"].pid is not None
    crash(state.services["triton"].pid)
    for user in USERS[:4]:
        body = home(api, user)
        assert body.items, "no answer while Triton is down"
        assert body.degraded
        assert any(r.startswith("scorer/triton_ranker:") for r in body.degraded_reasons)
        assert all(not i.scores for i in body.items)  # retrieval order, not model scores
    assert metric(api, "vidrec_degraded_total", stage="scorer/triton_ranker") >= before + 4


@pytest.mark.slow
def test_fuzzed_api_never_answers_5xx_with_triton_down(api: str, stack: Stack) -> None:
    state = read_stack_state(stack.run_dir)
    assert state is not None and state.services["triton"].pid is not None
    crash(state.services["triton"].pid)  # already dead when the test before it ran
    assert not TcpCheck(stack.cfg.triton.grpc_port)(), "Triton still answers"
    fuzz(api)
    assert not unhealthy(stack, "triton"), "a service did not survive the fuzzed input"


@pytest.mark.slow
def test_fuzzed_api_never_answers_5xx_with_every_server_up(api: str, stack: Stack) -> None:
    """Runs after the Triton tests (fuzzed events and forgotten users would change the feeds
    they judge): Triton is started again first, and must be up, ranking, and scraped."""
    stack.up(only={"triton"}, progress=False)  # raises unless every service is healthy
    poll(lambda: any(i.scores for u in USERS[:4] for i in home(api, u).items[:1]), 60.0)  # ranked
    poll(lambda: set(up_by_job(stack).values()) == {1.0}, 30.0)
    sizes = log_sizes(stack)
    fuzz(api)
    assert not unhealthy(stack), "a service did not survive the fuzzed input"
    assert set(up_by_job(stack).values()) == {1.0}
    crashed = {k: v for k, v in errors_since(stack, sizes).items() if "Traceback" in str(v)}
    assert not crashed, f"fuzzed input raised in a service: {crashed}"


def test_redis_master_down_still_answers_degraded_and_counts_it(api: str, stack: Stack) -> None:
    before = metric(api, "vidrec_degraded_total")
    port = stack.cfg.stack.redis_base_port  # the first of the three masters
    subprocess.run(
        ["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=10
    )
    degraded = 0
    for user in range(40):  # users hash over all 64 buckets; some live on the dead master
        body = home(api, user)
        assert body.items is not None
        degraded += body.degraded
    assert degraded > 0
    assert metric(api, "vidrec_degraded_total") > before
