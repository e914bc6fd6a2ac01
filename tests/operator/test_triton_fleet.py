"""The operator's TritonFleet over REAL tritonservers, discovered through EndpointSlices in an
API server (kmock): the candidate version lands on every replica, a replica that joins later
gets it on the next call, and the unload reaches every replica.

The Tritons listen on 127.0.0.1 on different ports, so each gets a slice of its own (ports
are per slice). A real API server refuses loopback endpoint addresses, so with KUBECONFIG set
this test is skipped: it needs Tritons the cluster's slices can name.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.operator.conftest import REAL_CLUSTER, Cluster
from vidrec.ranking.triton_process import TritonProcess
from vidrec.rollout.operator import DependencyError, OperatorSettings, _guard
from vidrec.rollout.triton_control import TritonModels
from vidrec.rollout.triton_fleet import SERVICE_LABEL, EndpointUnreachable, TritonFleet, models_for

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from triton_server import triton_server

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.integration,
    pytest.mark.skipif(bool(REAL_CLUSTER), reason="a real API server rejects 127.0.0.1 slices"),
]
SERVICE = "vidrec-triton"


def _pinned_repository(artefacts: Path, root: Path) -> Path:
    """Versions 1 and 2 on disk, the config pinned to 1: a replica starts serving the stable
    version only, as a pod does whose repository copy predates the rollout's load."""
    repo = root / "model_repository"
    shutil.copytree(artefacts / "model_repository" / "ranker", repo / "ranker")
    shutil.copytree(repo / "ranker" / "1", repo / "ranker" / "2")
    config = repo / "ranker" / "config.pbtxt"
    policy = "version_policy {\n  all {\n  }\n}"
    assert policy in config.read_text(), "the test repository's version policy changed"
    config.write_text(
        config.read_text().replace(policy, "version_policy { specific { versions: 1 } }")
    )
    return repo


@pytest.fixture(scope="module")
def tritons(
    artefacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[TritonProcess]]:
    """Three tritonservers over the pinned repository, started side by side (each ~10-20 s)."""
    root = tmp_path_factory.mktemp("fleet")
    repo = _pinned_repository(artefacts, root)
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(3) as pool:
        managers = [triton_server(repo, workdir=root / f"triton-{i}") for i in range(3)]
        futures = [pool.submit(m.__enter__) for m in managers]
        servers: list[TritonProcess] = []
        errors: list[BaseException] = []
        for manager, future in zip(managers, futures, strict=True):
            try:
                servers.append(future.result())
            except BaseException as exc:  # skip/fail of one: still stop the others
                errors.append(exc)
                continue
            stack.push(manager.__exit__)
        if errors:
            raise errors[0]
        yield servers


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _slice(name: str, url: str, *, ready: bool = True, service: str = SERVICE) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {SERVICE_LABEL: service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": _port(url), "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    }


def _versions(server: TritonProcess) -> set[int]:
    direct = TritonModels(server.http_url, "ranker")
    try:
        return direct.ready_versions()
    finally:
        direct.close()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_candidate_on_every_replica_then_unloaded_everywhere(
    cluster: Cluster, tritons: list[TritonProcess]
) -> None:
    api = k8s.DiscoveryV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
    ns = cluster.namespace

    async def add(name: str, url: str, *, ready: bool = True, service: str = SERVICE) -> None:
        body = _slice(name, url, ready=ready, service=service)
        await asyncio.to_thread(api.create_namespaced_endpoint_slice, ns, body)

    async def remove(name: str) -> None:
        await asyncio.to_thread(api.delete_namespaced_endpoint_slice, name, ns)

    settings = OperatorSettings(triton_service=SERVICE)  # a bare name: the rollout's namespace
    fleet = models_for(settings, "ranker", ns)  # what build_deps gives the operator
    assert isinstance(fleet, TritonFleet)
    first, second, late = tritons
    assert [_versions(s) for s in tritons] == [{1}, {1}, {1}]  # every replica: stable only

    # No ready endpoint: not ready, and nothing to load on (the tick retries).
    await add("triton-late", late.http_url, ready=False)  # not ready yet: not in the fleet
    await add("other", late.http_url, service="other-triton")  # another Service's pods
    assert not await asyncio.to_thread(fleet.ready, 1)
    with pytest.raises(EndpointUnreachable, match="no ready Triton endpoint"):
        await asyncio.to_thread(fleet.ensure_loaded, 2)

    await add("triton-a", first.http_url)
    await add("triton-b", second.http_url)
    assert await asyncio.to_thread(fleet.endpoints) == sorted([first.http_url, second.http_url])
    assert await asyncio.to_thread(fleet.ready, 1)
    assert not await asyncio.to_thread(fleet.ready, 2)

    await asyncio.to_thread(fleet.ensure_loaded, 2)  # LoadCandidate
    assert _versions(first) == _versions(second) == {1, 2}  # the stable kept serving too
    assert await asyncio.to_thread(fleet.ready, 2)
    assert _versions(late) == {1}  # never in the fleet: untouched

    # A replica joins mid-rollout: the fleet is not ready until the next load reaches it.
    await remove("triton-late")
    await add("triton-late", late.http_url)
    assert not await asyncio.to_thread(fleet.ready, 2)
    await asyncio.to_thread(fleet.ensure_loaded, 2)
    assert [_versions(s) for s in tritons] == [{1, 2}, {1, 2}, {1, 2}]
    assert await asyncio.to_thread(fleet.ready, 2)

    # One replica not answering: a DependencyError for the operator, naming the endpoint.
    dead = f"http://127.0.0.1:{_dead_port()}"
    await add("triton-dead", dead)
    with pytest.raises(DependencyError, match=dead):
        await asyncio.to_thread(_guard, "models.ready", lambda: fleet.ready(2))
    await remove("triton-dead")

    # The late replica leaves; the unload (UnloadCandidate, after a rollback) reaches the rest.
    await remove("triton-late")
    await asyncio.to_thread(fleet.unload, 2)
    assert [_versions(s) for s in tritons] == [{1}, {1}, {1, 2}]
    assert not await asyncio.to_thread(fleet.ready, 2)
    await asyncio.to_thread(fleet.unload, 2)  # idempotent: nothing serves it any more
    assert await asyncio.to_thread(fleet.ready, 1)
    fleet.close()
