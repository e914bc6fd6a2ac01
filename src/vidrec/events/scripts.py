"""Running one Lua script for a batch of events in one pipelined round trip per node.

Each call still writes its state and its event-id marker atomically in one slot; pipelining
only removes the per-event round trip, which bounded the processor at a few thousand events/s.
redis-py's cluster pipeline refuses EVALSHA, so calls are grouped by the node that owns their
first key and sent through that node's own client (a slot move mid-batch raises, and the batch
is retried: applying it again is a no-op).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from vidrec.events.streams import Client
from vidrec.features.stores import node_client

Call = tuple[list[str], list[Any]] | None  # (keys, args), or None: the event has no effect here
_loaded: set[tuple[int, str]] = set()  # (node client id, script sha) already SCRIPT LOADed


def run_scripts(client: Client, script: Script, calls: Sequence[Call]) -> list[bool | None]:
    """``script`` for every non-None call; True applied now, False applied before, None skipped."""
    by_node: dict[int, tuple[redis.Redis, list[int]]] = {}
    for i, call in enumerate(calls):
        if call is not None:
            node = node_client(client, call[0][0])
            by_node.setdefault(id(node), (node, []))[1].append(i)
    out: list[bool | None] = [None] * len(calls)
    for node, queued in by_node.values():
        for i, result in zip(
            queued, _evalshas(node, script, [calls[i] for i in queued]), strict=True
        ):
            out[i] = bool(result)
    return out


def _evalshas(node: redis.Redis, script: Script, calls: Sequence[Call]) -> list[Any]:
    """One pipelined EVALSHA per call. A node that restarted has lost its script cache
    (NOSCRIPT): load the script again and resend once — each call is idempotent."""
    loaded = (id(node), script.sha)
    for attempt in (1, 2):
        if loaded not in _loaded:
            node.script_load(script.script)
            _loaded.add(loaded)
        pipe = node.pipeline(transaction=False)
        for keys, args in calls:  # type: ignore[misc]
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            results: list[Any] = pipe.execute()
            return results
        except NoScriptError:
            _loaded.discard(loaded)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
