"""The harness itself: kopf sees the API server as a real one (kmock, or a cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.operator.conftest import Cluster, run_operator

ECHO = Path(__file__).with_name("echo_operator.py")


@pytest.mark.asyncio
async def test_handler_result_lands_in_status_and_an_event_is_posted(cluster: Cluster) -> None:
    name = cluster.unique("echo")
    created = await cluster.create(name, {"model": "ranker", "paused": False})
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    async with run_operator(cluster, ECHO):
        obj = await cluster.wait_for(name, lambda o: "echo" in o.get("status", {}), what="echo")
        assert obj["status"]["echo"] == {"model": "ranker"}
        await cluster.patch(name, {"spec": {"paused": True}})
        obj = await cluster.wait_for(name, lambda o: o.get("status", {}).get("paused") is True)
        assert obj["metadata"]["generation"] == 2
        assert int(obj["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        events = await cluster.events(name)
    assert any(e["reason"] == "Echo" and e["message"] == "saw ranker" for e in events), events


@pytest.mark.asyncio
async def test_status_writes_go_through_the_subresource_only(cluster: Cluster) -> None:
    if cluster.server is None:
        pytest.skip("checks the kmock server's own behaviour; a real cluster has it built in")
    name = cluster.unique("split")
    await cluster.create(name, {"model": "ranker"})
    obj = await cluster.patch(name, {"spec": {"model": "x"}, "status": {"phase": "Forged"}})
    assert "status" not in obj and obj["spec"]["model"] == "x"
    assert obj["metadata"]["generation"] == 2
