"""The Recommender composed with the Retrieval service (``VIDREC_SERVING__RETRIEVAL_MODE=remote``),
on each HTTP host: a home feed whose candidates come over HTTP from the real Retrieval service,
a new source answered by its generic endpoint, and a degraded-but-200 answer when it dies."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.settings import SLOW_MACHINE, crash
from tests.integration.test_serving_stack import full_config, home
from vidrec.backends.remote import from_columns
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import ServingConfig
from vidrec.pipeline.retrievers import Query
from vidrec_dev.stack import Stack, read_stack_state

pytestmark = pytest.mark.integration
SERVICES = {"redis", "prepare", "triton", "retrieval", "features", "recommender"}
SOURCE = "tests.sources.classics"  # the recipe's test source, loaded by the service


@pytest.fixture(scope="module", params=["bentoml", "uvicorn"])
def stack(
    artefacts: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The recommender on each HTTP host: the BentoML service (``bentoml.depends``) and the
    lean host (``vidrec.api.http_server``, BentoML's HTTP client to the same service)."""
    saved = dict(os.environ)
    os.environ.update(SLOW_MACHINE | {"VIDREC_SERVING__RETRIEVAL_MODE": "remote",
                                      "VIDREC_SERVING__SOURCE_MODULES": SOURCE,
                                      "VIDREC_SERVING__HTTP_HOST": request.param})  # fmt: skip
    cfg = full_config(tmp_path_factory.mktemp("remote-stack"))
    s = Stack(dataclasses.replace(cfg, serving=dataclasses.replace(
        cfg.serving, http_host=request.param)), artefacts)  # fmt: skip
    try:
        s.up(only=SERVICES, progress=False)
        yield s
    finally:
        s.down()
        os.environ.clear()
        os.environ.update(saved)


def served_by_retrieval(url: str, api: str) -> float:
    """Requests the Retrieval service answered on one endpoint (BentoML's own metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = rf'^bentoml_service_request_total\{{[^}}]*endpoint="/{api}"[^}}]*\}} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, flags=re.M))


def test_the_recommender_runs_on_the_configured_host(stack: Stack) -> None:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    url = state.url("recommender")
    assert httpx.get(f"{url}/api/v1/health", timeout=10).json() == {"ready": True}
    bentoml_metrics = httpx.get(f"{url}/metrics", timeout=10)
    if stack.cfg.serving.http_host == "uvicorn":  # nothing of BentoML around the app
        assert bentoml_metrics.status_code == 404
    else:
        assert "bentoml_service_request_total" in bentoml_metrics.text


def test_candidates_come_from_the_retrieval_service(stack: Stack) -> None:
    state = read_stack_state(stack.run_dir)
    assert state is not None
    api, retrieval = state.url("recommender"), state.url("retrieval")
    before = served_by_retrieval(retrieval, "retrieve")
    body = home(api, 3)
    assert not body.degraded, body.degraded_reasons
    assert len(body.items) == 20 and all(i.scores for i in body.items)
    deadline = time.monotonic() + 10  # BentoML records a request after it has answered it
    while served_by_retrieval(retrieval, "retrieve") < before + 1:
        assert time.monotonic() < deadline, "the Retrieval service saw no retrieve request"
        time.sleep(0.5)


def test_a_new_source_is_answered_by_the_generic_endpoint(stack: Stack, artefacts: Path) -> None:
    """The recipe's source, never named by the service: the same list as in process, and a
    name nobody registered is a 400 that lists the known ones."""
    state = read_stack_state(stack.run_dir)
    assert state is not None
    url = f"{state.url('retrieval')}/retrieve"
    reply = httpx.post(url, json={"name": "classics", "query": {}, "k": 6}, timeout=30)
    assert reply.status_code == 200, reply.text
    cfg = dataclasses.replace(ServingConfig(), source_modules=(SOURCE,))
    local = LocalRetrieval(ServingState.load(artefacts), cfg)
    assert from_columns(reply.json()) == asyncio.run(local.retrieve("classics", Query(), 6))
    bad = httpx.post(url, json={"name": "nope", "query": {}, "k": 6}, timeout=30)
    assert bad.status_code == 400 and "classics" in bad.text, bad.text
    bad = httpx.post(url, json={"name": "classics", "query": {"video_ids": ["x"]}, "k": 6},
                     timeout=30)  # fmt: skip
    assert bad.status_code == 400 and "query.video_ids" in bad.text, bad.text


def test_retrieval_service_down_degrades_to_the_cached_popular_list(stack: Stack) -> None:
    state = read_stack_state(stack.run_dir)
    assert state is not None and state.services["retrieval"].pid is not None
    home(state.url("recommender"), 4)  # the popular list is cached while retrieval is up
    crash(state.services["retrieval"].pid)
    deadline = time.monotonic() + 10
    while True:  # until nothing answers on the Retrieval port any more
        try:
            httpx.get(f"{state.url('retrieval')}/readyz", timeout=1)
        except httpx.HTTPError:
            break
        assert time.monotonic() < deadline, "the Retrieval service still answers after SIGKILL"
        time.sleep(0.2)
    body = home(state.url("recommender"), 5)
    assert body.degraded
    assert any(r.startswith("source/") for r in body.degraded_reasons)
