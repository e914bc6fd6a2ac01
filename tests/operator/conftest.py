"""The operator under test: kopf in-process (``KopfRunner``) against an API server.

Without ``KUBECONFIG`` the API server is :class:`~tests.operator.apiserver.ApiServer` (kmock
made to behave like one) on a free port, reached through a generated kubeconfig; with
``KUBECONFIG`` set the very same tests run against that cluster (the ModelRollout CRD must be
installed there). Either way kopf, the test and ``vidrec rollout`` talk to it only through
a kubeconfig, so nothing in the code under test knows which one it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import kmock
import kopf
import pytest
import pytest_asyncio
import yaml
from kopf._core.intents.registries import SmartOperatorRegistry  # kopf exports no name for it
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.redis_servers import standalone_redis
from tests.operator.apiserver import ApiServer

GROUP, VERSION, PLURAL = "vidrec.io", "v1alpha1", "modelrollouts"
REAL_CLUSTER = os.environ.get("KUBECONFIG")
MODE = f"real cluster ({REAL_CLUSTER})" if REAL_CLUSTER else "kmock API server (KUBECONFIG unset)"


def pytest_report_header() -> str:
    return f"operator tests run against: {MODE}"


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig with one anonymous context pointing at ``server``."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "anonymous", "user": {}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "anonymous"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Cluster:
    """ModelRollout objects and their Events, through the official client (run off-loop)."""

    kubeconfig: Path
    namespace: str
    server: ApiServer | None  # None on a real cluster
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        self.custom: Any = k8s.CustomObjectsApi(api)
        self.core: Any = k8s.CoreV1Api(api)

    def operator_registry(self) -> kopf.OperatorRegistry:
        """kopf's default logins on a real cluster; a kubeconfig login for the mock.

        The client library fixes its kubeconfig path when imported, before the fixture
        sets ``KUBECONFIG``, so the mock's kubeconfig is read by kopf's own reader instead.
        """
        if self.server is None:
            return SmartOperatorRegistry()
        registry = kopf.OperatorRegistry()
        kopf.on.login(registry=registry)(kopf.login_with_kubeconfig)
        return registry

    def _args(self) -> tuple[str, str, str, str]:
        return (GROUP, VERSION, self.namespace, PLURAL)

    def unique(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.names.append(name)
        return name

    async def create(self, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelRollout",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": dict(spec),
        }
        fn = self.custom.create_namespaced_custom_object
        return dict(await asyncio.to_thread(partial(fn, *self._args(), body)))

    async def get(self, name: str) -> dict[str, Any]:
        fn = self.custom.get_namespaced_custom_object
        return dict(await asyncio.to_thread(partial(fn, *self._args(), name)))

    async def patch(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        fn = self.custom.patch_namespaced_custom_object
        return dict(await asyncio.to_thread(partial(fn, *self._args(), name, dict(body))))

    async def delete(self, name: str) -> None:
        fn = self.custom.delete_namespaced_custom_object
        with contextlib.suppress(k8s.ApiException):
            await asyncio.to_thread(partial(fn, *self._args(), name))

    async def events(self, name: str) -> list[dict[str, Any]]:
        """Events about the object, oldest first, as plain dicts."""
        result = await asyncio.to_thread(self.core.list_namespaced_event, self.namespace)
        items = [e.to_dict() for e in result.items]
        return [e for e in items if (e.get("involved_object") or {}).get("name") == name]

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 20.0,
        what: str = "condition",
    ) -> dict[str, Any]:
        """Poll the object until ``predicate(obj)``; fail with the last state seen."""
        deadline = time.monotonic() + timeout
        obj = await self.get(name)
        while not predicate(obj):
            if time.monotonic() > deadline:
                pytest.fail(f"{name}: {what} not reached in {timeout:g}s; last: {obj!r}")
            await asyncio.sleep(0.2)
            obj = await self.get(name)
        return obj


@pytest_asyncio.fixture()
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    if REAL_CLUSTER:
        ns = os.environ.get("VIDREC_TEST_NAMESPACE", "default")
        real = Cluster(kubeconfig=Path(REAL_CLUSTER), namespace=ns, server=None)
        yield real
        for name in real.names:
            await real.delete(name)
        return
    async with ApiServer() as server, kmock.Server(server) as http:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(http.url).rstrip("/"))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # for kopf and the vidrec CLI
        yield Cluster(kubeconfig=kubeconfig, namespace="default", server=server)


@contextlib.asynccontextmanager
async def run_operator(cluster: Cluster, path: Path, *extra: str) -> AsyncIterator[KopfRunner]:
    """kopf running ``path`` cluster-wide in its own thread; stopped (and re-raising) on exit.

    Entering and leaving go through a worker thread: the mock API server lives on this
    event loop, and kopf still talks to it while it starts and stops.
    """
    args = ["run", "--all-namespaces", "--standalone", "--verbose", *extra, str(path)]
    runner = KopfRunner(args, registry=cluster.operator_registry(), timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


@pytest.fixture()
def redis_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real standalone Redis the operator's gateway-table router and serving share."""
    with standalone_redis() as url:
        monkeypatch.setenv("VIDREC_REDIS__URL", url)
        monkeypatch.setenv("VIDREC_REDIS__CLUSTER", "false")
        yield url
