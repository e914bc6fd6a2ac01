"""The chart's Redis cluster-init Job script, run against real redis-servers.

Rendered by helm, run by bash with DNS stubbed: pod ``vidrec-redis-<i>.…`` is a redis-server
on ``127.0.0.<i + 1>`` at the chart's port (a StatefulSet's pods share one port). Checks that
it creates a cluster with ``replicasPerMaster`` replicas, does nothing on a rerun, and turns
the new pods of a grown StatefulSet (replicasPerMaster 0 → 1, an upgrade) into replicas.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.chart.render import HELM, find, render_with
from tests.integration.redis_servers import REDIS_CLI, cluster_node, cluster_nodes, free_port
from tests.needs import require_binary

pytestmark = pytest.mark.integration

# Stubs in front of the Job's script: pod DNS names → 127.0.0.<i + 1>.
STUBS = f"""
ip_of() {{ case "$1" in vidrec-redis-*) i=${{1#vidrec-redis-}}; i=${{i%%.*}};
  echo "127.0.0.$((i + 1))";; *) echo "$1";; esac; }}
getent() {{ echo "$(ip_of "$2") $2"; }}
redis-cli() {{ local out=() prev=""; for a in "$@"; do
  if [ "$prev" = "-h" ]; then a=$(ip_of "$a"); fi; out+=("$a"); prev=$a; done
  {REDIS_CLI} "${{out[@]}}"; }}
"""


def ip(i: int) -> str:
    return f"127.0.0.{i + 1}"


def run_job(port: int, replicas_per_master: int) -> str:
    """The Job's script for these values, run to completion; its output."""
    docs = render_with(
        f"redis.bundled.port={port}", f"redis.bundled.replicasPerMaster={replicas_per_master}"
    )
    container = find(docs, "Job", "vidrec-redis-cluster-init")["spec"]["template"]["spec"]
    container = container["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env |= {"POD_NAMESPACE": "vidrec", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "-c", STUBS + container["args"][0]],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def pods(workdir: Path, port: int, indexes: range) -> Iterator[None]:
    with ExitStack() as stack:
        for i in indexes:
            stack.enter_context(cluster_node(workdir, ip(i), port))
        yield


def roles(port: int, replicas: int = 0) -> tuple[int, Counter[str]]:
    """(masters serving slots, replicas per master id) as the first pod sees them, once it
    knows of ``replicas`` replicas (gossip is a little behind the Job) or after 15 s."""
    deadline = time.monotonic() + 15
    while True:
        nodes = cluster_nodes(port, host=ip(0))
        masters = [n.node_id for n in nodes if n.is_master and n.slots]
        of = Counter(n.master_id for n in nodes if not n.is_master)
        if of.total() >= replicas or time.monotonic() > deadline:
            return len(masters), of
        time.sleep(0.1)


@pytest.fixture
def port() -> int:
    require_binary(HELM, "make tools (helm)")
    return free_port()


def test_job_creates_a_cluster_with_one_replica_per_master_and_reruns_as_a_no_op(
    port: int, tmp_path: Path
) -> None:
    with pods(tmp_path, port, range(6)):
        out = run_job(port, replicas_per_master=1)
        assert "cluster created:" in out
        masters, replicas = roles(port, replicas=3)
        assert masters == 3 and sorted(replicas.values()) == [1, 1, 1] and len(replicas) == 3
        assert "cluster exists" in run_job(port, replicas_per_master=1)
        assert roles(port, replicas=3) == (masters, replicas)


def test_upgrade_to_one_replica_per_master_joins_the_new_pods_as_replicas(
    port: int, tmp_path: Path
) -> None:
    with pods(tmp_path, port, range(3)):
        assert "cluster created:" in run_job(port, replicas_per_master=0)
        assert roles(port) == (3, Counter())
        with pods(tmp_path, port, range(3, 6)):  # the StatefulSet grew from 3 to 6 pods
            out = run_job(port, replicas_per_master=1)
            assert "cluster exists" in out and out.count("[OK] New node added correctly") == 3
            masters, replicas = roles(port, replicas=3)
            assert masters == 3 and sorted(replicas.values()) == [1, 1, 1] and len(replicas) == 3
