"""The bundled Redis Cluster's replicas: pod count, cluster creation, node timeout, spreading."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from tests.chart.render import find, render_with, rendered

STS, JOB = "vidrec-redis", "vidrec-redis-cluster-init"


def server_args(docs: Any) -> str:
    return str(
        find(docs, "StatefulSet", STS)["spec"]["template"]["spec"]["containers"][0]["args"][0]
    )


def job_env(docs: Any) -> dict[str, str]:
    container = find(docs, "Job", JOB)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def anti_affinity(docs: Any) -> dict[str, Any]:
    pod = find(docs, "StatefulSet", STS)["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    return dict(term)


def test_default_is_one_replica_per_master_spread_over_nodes() -> None:
    docs = rendered("default")
    assert find(docs, "StatefulSet", STS)["spec"]["replicas"] == 6  # 3 masters + 3 replicas
    assert job_env(docs) | {"POD_NAMESPACE": ""} == {
        "NODES": "6", "REPLICAS": "1", "POD_NAMESPACE": "", "REDISCLI_AUTH": "",
    }  # fmt: skip
    script = find(docs, "Job", JOB)["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '--cluster-replicas "$REPLICAS"' in script and "$((NODES - 1))" in script
    assert "--cluster-node-timeout 15000" in server_args(docs)
    term = anti_affinity(docs)
    assert term["weight"] == 100
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = find(docs, "StatefulSet", STS)["spec"]["selector"]["matchLabels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector


def test_no_replicas_keeps_one_pod_per_master() -> None:
    docs = render_with("redis.bundled.replicasPerMaster=0")
    assert find(docs, "StatefulSet", STS)["spec"]["replicas"] == 3
    assert job_env(docs)["NODES"] == "3" and job_env(docs)["REPLICAS"] == "0"


def test_sizes_timeout_and_affinity_are_settable() -> None:
    docs = render_with(
        "redis.bundled.masters=4",
        "redis.bundled.replicasPerMaster=2",
        "redis.bundled.clusterNodeTimeoutMs=5000",
        "redis.bundled.antiAffinityTopologyKey=topology.kubernetes.io/zone",
    )
    assert find(docs, "StatefulSet", STS)["spec"]["replicas"] == 12
    assert job_env(docs)["NODES"] == "12" and job_env(docs)["REPLICAS"] == "2"
    assert re.search(r"--cluster-node-timeout 5000\b", server_args(docs))
    assert anti_affinity(docs)["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
    off = render_with("redis.bundled.antiAffinityTopologyKey=")
    assert "affinity" not in find(off, "StatefulSet", STS)["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    "bad", ["redis.bundled.replicasPerMaster=-1", "redis.bundled.clusterNodeTimeoutMs=100"]
)
def test_schema_rejects_bad_replica_settings(bad: str) -> None:
    with pytest.raises(subprocess.CalledProcessError) as err:
        render_with(bad)
    assert "values don't meet the specifications of the schema" in err.value.stderr
    assert bad.split("=")[0].replace(".", "/") in err.value.stderr
