"""The whole local stack, as `make up` starts it: Redis Cluster, Triton, the BentoML services,
the gRPC server and Prometheus, on free 127.0.0.1 ports — and what users rely on from it:
deterministic answers, not-interested respected, the diversity rule, and degraded-but-200
answers when Triton or a Redis master really dies.

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

from tests.integration.settings import SLOW_MACHINE, crash
from tests.integration.test_stack import free_ports, stack_config
from vidrec.backends.serving_state import ServingState
from vidrec.config import Config, RedisConfig
from vidrec.features import make_store
from vidrec.features.session import SessionStore
from vidrec.schema import RecommendationResponse
from vidrec_dev.stack import Stack, read_stack_state

pytestmark = pytest.mark.integration
USERS = (1, 2, 3, 5, 8, 13, 21, 34)


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
