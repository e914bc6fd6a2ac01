"""The vectorised MGET builder writes exactly the keys of the one key layout, and puts the
replies back in the order of the ids."""

from __future__ import annotations

import hiredis
import numpy as np
import pytest

from vidrec.contracts.keys import key_for, keys_for
from vidrec.features.resp import mget_command, plan_cluster_read, resp_command

N_BUCKETS = 24


def parse(wire: bytes) -> list[list[bytes]]:
    """Commands in RESP read back the way a server reads them."""
    reader = hiredis.Reader()
    reader.feed(wire)
    commands = []
    while (command := reader.gets()) is not False:
        commands.append(command)
    return commands


def ids_of_every_width() -> np.ndarray:
    rng = np.random.default_rng(7)
    edge = [0, 1, 9, 10, 99, 100, 10**9, 10**18 - 1, 10**18, 2**62 - 1, -1, -10, -123_456]
    return np.concatenate([rng.choice(1_000_000, 480, replace=False), edge]).astype(np.int64)


def route(bucket: int) -> str:
    return f"node-{bucket % 3}"


def test_one_mget_of_the_keys_in_order() -> None:
    ids = ids_of_every_width()
    [command] = parse(mget_command("vf", ids, N_BUCKETS))
    assert command == [b"MGET", *(k.encode() for k in keys_for("vf", ids.tolist(), N_BUCKETS))]
    assert resp_command(b"GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


def test_cluster_read_is_one_mget_per_bucket_sent_to_its_node() -> None:
    ids = ids_of_every_width()
    plan = plan_cluster_read("vf", ids, N_BUCKETS, route)
    seen: list[bytes] = []
    for node, (wire, n_commands) in plan.commands.items():
        commands = parse(wire)
        assert len(commands) == n_commands
        buckets = []
        for command in commands:
            assert command[0] == b"MGET"
            keys = command[1:]
            bucket = {int(k.rsplit(b":", 1)[1]) % N_BUCKETS for k in keys}
            assert len(bucket) == 1 and route(bucket.pop()) == node  # one slot, its owner
            buckets.append(int(keys[0].rsplit(b":", 1)[1]) % N_BUCKETS)
            seen.extend(keys)
        assert len(set(buckets)) == len(buckets)  # never two MGETs for one bucket
    assert sorted(seen) == sorted(k.encode() for k in keys_for("vf", ids.tolist(), N_BUCKETS))


def test_replies_come_back_in_the_order_of_the_ids() -> None:
    ids = ids_of_every_width()
    plan = plan_cluster_read("vf", ids, N_BUCKETS, route)
    # A server answering each key with its own name, and nothing for negative ids.
    replies = {
        node: [
            [None if k.rsplit(b":", 1)[1].startswith(b"-") else k for k in command[1:]]
            for command in parse(wire)
        ]
        for node, (wire, _) in plan.commands.items()
    }
    expected = [None if i < 0 else key_for("vf", i, N_BUCKETS).encode() for i in ids.tolist()]
    assert plan.assemble(replies) == expected
    first = next(iter(replies))
    replies[first][0] = replies[first][0][:-1]  # a short reply is an error, never misplaced
    with pytest.raises(ValueError, match="values for"):
        plan.assemble(replies)


def test_a_percent_sign_in_an_entity_is_refused() -> None:
    with pytest.raises(ValueError, match="'%'"):
        mget_command("v%d", np.arange(3), N_BUCKETS)
