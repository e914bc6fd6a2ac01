"""The ConfigMap routing table end to end: the router writes it through an API server (kmock,
or the cluster in KUBECONFIG), the ConfigMap's data lands as a file (what the kubelet does
for the chart's volume mount), and serving's RoutingCache reads the weights from that file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.operator.conftest import Cluster
from vidrec.backends.routing import RoutingCache, file_reader
from vidrec.rollout.routers import GatewayTableConfigMapRouter, RouteTarget
from vidrec.rollout.routers.gateway_table import CONFIGMAP_KEY

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]


async def test_serving_follows_the_configmap_the_router_writes(
    cluster: Cluster, tmp_path: Path
) -> None:
    name = cluster.unique("routing")
    target = RouteTarget(model="ranker", stable="3", candidate="4", namespace=cluster.namespace,
                         name=name)  # fmt: skip
    mounted = tmp_path / "routing" / CONFIGMAP_KEY
    cache = RoutingCache(None, "", "salt", ttl_s=0, reader=file_reader(mounted))  # type: ignore[arg-type]
    assert [v.name for v in (await cache.table()).variants] == ["stable"]  # no file: default

    router = await asyncio.to_thread(GatewayTableConfigMapRouter, target)
    await asyncio.to_thread(router.reconcile)
    await asyncio.to_thread(router.set_weights, 70, 30)
    assert await asyncio.to_thread(router.get_weights) == (70, 30)

    def project() -> None:  # the kubelet's job: ConfigMap data → files in the volume
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
        cm = api.read_namespaced_config_map(name, cluster.namespace)
        mounted.parent.mkdir(exist_ok=True)
        mounted.write_text(cm.data[CONFIGMAP_KEY])

    try:
        await asyncio.to_thread(project)
        table = await cache.table()
        assert [(v.name, v.weight_percent, v.model_version) for v in table.variants] == [
            ("stable", 70, 3),
            ("canary", 30, 4),
        ]
        users = [(await cache.variant_for(u)).name for u in range(2000)]
        assert 0.25 < users.count("canary") / len(users) < 0.35

        mounted.write_text("{not json")  # a torn write: the last good table stays in force
        assert (await cache.table()).variants == table.variants and cache.parse_errors == 1
    finally:
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(cluster.kubeconfig)))
        await asyncio.to_thread(api.delete_namespaced_config_map, name, cluster.namespace)
