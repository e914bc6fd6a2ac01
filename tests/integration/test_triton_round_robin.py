"""One ranker channel spread over TWO REAL tritonservers, judged by each server's own
statistics: the client given a two-address target (as the headless Service's DNS answer
gives it in the cluster) sends its requests to both, where gRPC's default pick_first would
send every one to a single server; connections Triton closes at their maximum age (the
chart's flag, how clients come to re-resolve the headless Service) cost no request; and when
one server stops, requests keep succeeding on the other (round_robin drops the dead address
from its rotation)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrec.backends.ranker import TritonRankerClient
from vidrec.config import RankingConfig, TritonConfig, load_config
from vidrec.ranking.export import export_ranker_onnx
from vidrec.ranking.model_repository import write_model_repository
from vidrec.ranking.triton_client import channel_options, inference_counts
from vidrec.ranking.triton_process import TritonProcess

sys.path.insert(0, str(Path(__file__).parent))
from triton_server import triton_server

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
D = 24
ROWS = 16
N_REQUESTS = 40
MAX_AGE_MS = 1000  # the chart's triton.grpcMaxConnectionAgeMs, shortened


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[TritonProcess]]:
    """Two servers over one model repository (one instance each: 2 CPUs are shared), closing
    gRPC connections at MAX_AGE_MS as the chart's Triton does at a minute."""
    work = tmp_path_factory.mktemp("rr")
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(D, 3), torch.nn.Sigmoid()).eval()
    onnx = export_ranker_onnx(module, D, work / "ranker.onnx")
    cfg = dataclasses.replace(RankingConfig(), cpu_instances=1)
    repo = write_model_repository(work / "repo", onnx, cfg, warmup_rows=1)
    age = (f"--grpc-max-connection-age={MAX_AGE_MS}", "--grpc-max-connection-age-grace=5000")
    with ExitStack() as stack:
        yield [
            stack.enter_context(triton_server(repo, workdir=work / f"w{i}", extra_args=age))
            for i in (0, 1)
        ]


def static_target(servers: list[TritonProcess]) -> str:
    return "ipv4:" + ",".join(s.grpc_url for s in servers)


def requests_served(servers: list[TritonProcess]) -> list[int]:
    """Successful ``ranker`` requests so far, per server, from its statistics API."""
    return [inference_counts(s.grpc_url, "ranker").requests for s in servers]


async def rank(triton: TritonConfig, n: int) -> list[np.ndarray]:
    """``n`` sequential requests on one client (one channel), as a recommender pod sends."""
    client = TritonRankerClient(
        triton.ranker_target, triton.model_name, 10.0, lambda _variant: "",
        channel_options=channel_options(triton),
    )  # fmt: skip
    x = np.random.default_rng(0).normal(size=(ROWS, D)).astype(np.float32)
    try:
        return [(await client.score(x, "stable")).heads for _ in range(n)]
    finally:
        await client.close()


def test_one_channel_spreads_requests_over_both_servers(servers: list[TritonProcess]) -> None:
    # Configured as the chart does it: the target through the environment.
    triton = load_config({"VIDREC_TRITON__GRPC_TARGET": static_target(servers)}).triton
    assert triton.ranker_target == static_target(servers)
    before = requests_served(servers)
    answers = asyncio.run(rank(triton, N_REQUESTS))
    served = [after - b for after, b in zip(requests_served(servers), before, strict=True)]
    assert len(answers) == N_REQUESTS and all(a.shape == (ROWS, 3) for a in answers)
    assert sum(served) == N_REQUESTS, served
    # Round-robin alternates once both connections are up: close to 20/20.
    assert min(served) >= N_REQUESTS // 4, served


def test_pick_first_would_pin_the_channel_to_one_server(servers: list[TritonProcess]) -> None:
    """The control: the same target without round_robin is what a single connection does."""
    triton = dataclasses.replace(
        TritonConfig(), grpc_target=static_target(servers), grpc_lb_policy="pick_first"
    )
    before = requests_served(servers)
    asyncio.run(rank(triton, N_REQUESTS))
    served = [after - b for after, b in zip(requests_served(servers), before, strict=True)]
    assert sorted(served) == [0, N_REQUESTS], served


def test_connections_closed_at_their_maximum_age_cost_no_request(
    servers: list[TritonProcess],
) -> None:
    """Over three connection ages every request succeeds: a connection Triton closes takes
    no new calls, and the channel reconnects (re-resolving its target) behind it."""
    triton = dataclasses.replace(TritonConfig(), grpc_target=static_target(servers))
    x = np.random.default_rng(2).normal(size=(ROWS, D)).astype(np.float32)

    async def steady() -> int:
        client = TritonRankerClient(
            triton.ranker_target, "ranker", 10.0, lambda _variant: "",
            channel_options=channel_options(triton),
        )  # fmt: skip
        sent, end = 0, time.monotonic() + 3 * MAX_AGE_MS / 1000
        try:
            while time.monotonic() < end:
                assert (await client.score(x, "stable")).heads.shape == (ROWS, 3)
                sent += 1
                await asyncio.sleep(0.02)
        finally:
            await client.close()
        return sent

    before = requests_served(servers)
    sent = asyncio.run(steady())
    served = [after - b for after, b in zip(requests_served(servers), before, strict=True)]
    assert sent > 20 and sum(served) == sent and min(served) >= sent // 4, (sent, served)


def test_requests_keep_succeeding_when_one_server_stops(servers: list[TritonProcess]) -> None:
    """Runs last in this module: it stops the second server."""
    triton = dataclasses.replace(TritonConfig(), grpc_target=static_target(servers))
    x = np.random.default_rng(1).normal(size=(ROWS, D)).astype(np.float32)

    async def scenario() -> tuple[list[int], list[int]]:
        client = TritonRankerClient(
            triton.ranker_target, "ranker", 10.0, lambda _variant: "",
            channel_options=channel_options(triton),
        )  # fmt: skip
        try:
            start = requests_served(servers)
            for _ in range(10):
                await client.score(x, "stable")
            both = requests_served(servers)
            servers[1].stop()  # Triton closes its connections as it exits
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            for _ in range(20):  # every one must succeed: none is routed to the dead server
                assert (await client.score(x, "stable")).heads.shape == (ROWS, 3)
            assert time.monotonic() - t0 < 10
            survivor = requests_served(servers[:1])
            return [b - s for b, s in zip(both, start, strict=True)], [survivor[0] - both[0]]
        finally:
            await client.close()

    before_stop, on_survivor = asyncio.run(scenario())
    assert min(before_stop) >= 1, before_stop  # both served while both were up
    assert on_survivor == [20]
