"""The first feed after the stack reports healthy is a real one, not a degraded one.

Unlike the other stack tests, this stack runs with the production stage deadlines (tens of
milliseconds): a cold process — first Triton inference, first user-tower run, first FAISS
search, first Redis connections — used to miss them on its first requests and answer
``degraded`` (``scorer/triton_ranker:timeout``, ``pipeline/total:timeout``). Serving now warms
itself before readiness (``vidrec.api.warmup``); ``VIDREC_SERVING__WARMUP_S=0`` turns that
off and makes this test fail again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.integration.test_serving_stack import full_config
from vidrec.api.proto import recommender_pb2 as pb
from vidrec.api.proto import recommender_pb2_grpc as pb_grpc
from vidrec_dev.stack import Stack, read_stack_state

pytestmark = pytest.mark.integration
BACKENDS = {"redis", "prepare", "triton", "retrieval", "features"}
USER = 34  # has features, and is not among the users the warm-up itself asks for (0..7)


@pytest.fixture(scope="module")
def stack(artefacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The backends only: each test starts its server and asks it at once, as `make up` does."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("VIDREC_SERVING__DEADLINE_")]:
        del os.environ[name]  # production deadlines: what `make up` serves with
    s = Stack(full_config(tmp_path_factory.mktemp("first-feed")), artefacts)
    try:
        s.up(only=BACKENDS, progress=False)
        yield s
    finally:
        s.down()
        os.environ.clear()
        os.environ.update(saved)


def ranked_rows(stack: Stack) -> int:
    """Rows the ranker has scored so far, by Triton's own statistics."""
    state = read_stack_state(stack.run_dir)
    assert state is not None
    stats = httpx.get(f"{state.url('triton')}/v2/models/ranker/stats", timeout=10).json()
    return sum(int(m["inference_count"]) for m in stats["model_stats"])


def start(stack: Stack, service: str) -> str:
    """Start ``service``; its URL once `up` has seen it healthy. By then it has already
    scored through Triton (warm-up): a server with a cold ranker path is not ready."""
    before = ranked_rows(stack)
    state = stack.up(only={service}, progress=False)
    assert ranked_rows(stack) > before, f"{service} reported ready before any inference"
    return state.url(service)


def test_the_first_home_feed_over_http_is_not_degraded(stack: Stack) -> None:
    url = start(stack, "recommender")
    resp = httpx.get(
        f"{url}/api/v1/recommendations/home", params={"user_id": USER, "count": 20}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["degraded"], body["degraded_reasons"]) == (False, [])
    assert len(body["items"]) == 20 and all(item["scores"] for item in body["items"])


def test_the_first_home_feed_over_grpc_is_not_degraded(stack: Stack) -> None:
    target = start(stack, "grpc")
    with grpc.insecure_channel(target) as channel:
        rpc = pb_grpc.RecommenderStub(channel).Recommend(
            pb.RecommendRequest(surface="home", user_id=USER, count=20), timeout=30
        )
    assert (rpc.degraded, list(rpc.degraded_reasons)) == (False, [])
    assert len(rpc.items) == 20 and all(item.scores for item in rpc.items)
