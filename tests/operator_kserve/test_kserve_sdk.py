"""The KServe router through the real kserve SDK (``KServeClient``) against an API server.

Without ``KUBECONFIG`` the server is the kmock-based :class:`ApiServer` the operator tests use
(JSON merge patches, resourceVersion bookkeeping); with ``KUBECONFIG`` set it is that cluster,
where KServe's CRD must be installed (and its controller will also act on the objects).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import pytest_asyncio
from kserve import (
    KServeClient,
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
)
from kubernetes.client import V1ObjectMeta

from tests.operator.apiserver import ApiServer
from tests.operator.conftest import REAL_CLUSTER, write_kubeconfig
from vidrec.rollout.routers import KServeRouter, RouteTarget

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]
ISVCS = "serving.kserve.io/v1beta1/inferenceservices"
ISVC_INFO = kmock.ResourceInfo(
    kind="InferenceService",
    singular="inferenceservice",
    namespaced=True,
    verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    shortnames={"isvc"},
    subresources={"status"},
)
STABLE, CANDIDATE = "s3://models/ranker/3", "s3://models/ranker/4"


@pytest_asyncio.fixture()
async def kserve_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[KServeClient]:
    if REAL_CLUSTER:
        yield KServeClient(config_file=REAL_CLUSTER)
        return
    server = ApiServer()
    server.resources[ISVCS] = ISVC_INFO
    async with server, kmock.Server(server) as http:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(http.url).rstrip("/"))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # what KServeClient() reads
        yield KServeClient(config_file=str(kubeconfig))


def inference_service(name: str, mode: str) -> V1beta1InferenceService:
    """A Triton InferenceService on the stable model, typed as the SDK builds it."""
    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=name,
            namespace="default",
            annotations={"serving.kserve.io/deploymentMode": mode},
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                name="v3",
                min_replicas=2,
                model=V1beta1ModelSpec(
                    model_format=V1beta1ModelFormat(name="triton"), storage_uri=STABLE
                ),
            )
        ),
    )


async def run(fn: Any, *args: Any) -> Any:
    """SDK calls block; the mock API server lives on this event loop."""
    return await asyncio.to_thread(fn, *args)


async def test_standard_mode_canary_through_the_sdk(kserve_client: KServeClient) -> None:
    name = f"ranker-{uuid.uuid4().hex[:6]}"
    await run(kserve_client.create, inference_service(name, "RawDeployment"))
    try:
        target = RouteTarget(model="ranker", stable=STABLE, candidate=CANDIDATE, name=name)
        router = await run(KServeRouter, target)  # builds its own KServeClient from KUBECONFIG
        await run(router.reconcile)
        await run(router.set_weights, 75, 25)
        isvc = await run(kserve_client.get, name, "default")
        (entry,) = isvc["spec"]["canary"]
        assert entry["trafficPercent"] == 25
        assert entry["predictor"]["model"]["storageUri"] == CANDIDATE
        assert entry["predictor"]["minReplicas"] == 2
        assert await run(router.get_weights) == (75, 25)

        await run(router.set_weights, 0, 100)
        await run(router.finalize)
        isvc = await run(kserve_client.get, name, "default")
        assert not isvc["spec"].get("canary")
        assert isvc["spec"]["predictor"]["name"] == router.canary
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == CANDIDATE
    finally:
        await run(kserve_client.delete, name, "default")


async def test_knative_mode_rollback_through_the_sdk(kserve_client: KServeClient) -> None:
    name = f"ranker-{uuid.uuid4().hex[:6]}"
    await run(kserve_client.create, inference_service(name, "Serverless"))
    try:
        target = RouteTarget(model="ranker", stable=STABLE, candidate=CANDIDATE, name=name)
        router = await run(KServeRouter, target)
        await run(router.reconcile)
        await run(router.set_weights, 90, 10)
        isvc = await run(kserve_client.get, name, "default")
        assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == CANDIDATE
        assert "canary" not in isvc["spec"]  # Standard mode's field stays untouched

        await run(router.set_weights, 100, 0)
        await run(router.finalize)
        isvc = await run(kserve_client.get, name, "default")
        assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == STABLE
    finally:
        await run(kserve_client.delete, name, "default")
