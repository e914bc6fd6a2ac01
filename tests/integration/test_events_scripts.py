"""Batched Lua scripts survive a node that lost its script cache (a restarted master)."""

from __future__ import annotations

import pytest
import redis
from redis.commands.core import Script

from tests.integration.redis_servers import standalone_redis
from vidrec.events.scripts import run_scripts

pytestmark = pytest.mark.integration

SET_ONCE = "if redis.call('SETNX', KEYS[1], ARGV[1]) == 1 then return 1 else return 0 end"


def test_scripts_reload_after_the_server_forgets_them() -> None:
    with standalone_redis() as url:
        client = redis.Redis.from_url(url)
        script = Script(client, SET_ONCE)
        assert run_scripts(client, script, [(["a"], [1]), None, (["b"], [2])]) == [True, None, True]
        client.script_flush()  # what a restarted master looks like: an empty script cache
        assert run_scripts(client, script, [(["a"], [1]), (["c"], [3])]) == [False, True]
        assert client.get("c") == b"3"
