"""MGETs of per-entity keys as Redis wire bytes (RESP2), with no Python step per key.

A 500-candidate read on a cluster is 24 MGETs over three nodes. Grouping the ids and writing
each key as ``$<len>\\r\\n<entity>:{b<k>}:<id>\\r\\n`` one at a time in Python cost about as
much client CPU as the read itself. Here numpy groups the ids and counts their digits, and
each node's commands come out of ONE ``bytes % tuple`` format: a template with ``%d`` where
each key's length and id go, filled in C.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidrec.contracts.keys import tag_of_bucket

_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)  # 10 .. 10^18: a digit count by search


def resp_command(*args: bytes) -> bytes:
    """One command in the Redis wire protocol, ready for ``send_packed_command``."""
    head = b"*%d\r\n" % len(args)
    return head + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def mget_head(n_keys: int) -> bytes:
    return b"*%d\r\n$4\r\nMGET\r\n" % (n_keys + 1)


@functools.lru_cache(maxsize=64)
def _key_templates(entity: str, n_buckets: int) -> tuple[tuple[bytes, ...], np.ndarray]:
    """Per bucket: the key's RESP with ``%d`` for its length and its id; the prefix lengths."""
    prefixes = [f"{entity}:{tag_of_bucket(b)}:".encode() for b in range(n_buckets)]
    if any(b"%" in p for p in prefixes):
        raise ValueError(f"entity {entity!r}: '%' cannot appear in a key prefix")
    templates = tuple(b"$%%d\r\n%s%%d\r\n" % p for p in prefixes)
    return templates, np.array([len(p) for p in prefixes], dtype=np.int64)


def _length_id_pairs(ids: np.ndarray, prefix_lengths: np.ndarray) -> list[int]:
    """``[len(key_0), id_0, len(key_1), id_1, ...]``: the values a run of key templates takes."""
    digits = 1 + np.searchsorted(_POW10, np.abs(ids), side="right") + (ids < 0)
    pairs = np.empty(2 * ids.size, dtype=np.int64)
    pairs[0::2] = prefix_lengths + digits
    pairs[1::2] = ids
    return pairs.tolist()


def mget_command(entity: str, ids: np.ndarray, n_buckets: int) -> bytes:
    """``MGET`` of the keys of ``ids`` in order (any buckets: a standalone server's read)."""
    templates, prefix_lengths = _key_templates(entity, n_buckets)
    buckets = ids % n_buckets
    body = b"".join(map(templates.__getitem__, buckets.tolist()))
    return mget_head(ids.size) + body % tuple(_length_id_pairs(ids, prefix_lengths[buckets]))


@dataclass(frozen=True)
class ClusterRead:
    """A read of many ids over a cluster: each node's MGETs, one per bucket, as RESP.

    ``order`` lists the positions of the ids in the order their values come back (node by
    node in ``commands`` order, bucket by bucket within a node); :meth:`assemble` puts the
    replies back in the order of the ids.
    """

    order: np.ndarray
    commands: dict[str, tuple[bytes, int]]  # node -> (its MGETs, how many)

    def assemble(self, replies: dict[str, list[list[bytes | None]]]) -> list[bytes | None]:
        values = [v for node in self.commands for reply in replies[node] for v in reply]
        if len(values) != self.order.size:
            raise ValueError(f"{len(values)} values for {self.order.size} keys")
        out = np.empty(self.order.size, dtype=object)
        out[self.order] = values
        return out.tolist()


def plan_cluster_read(
    entity: str, ids: np.ndarray, n_buckets: int, route: Callable[[int], str]
) -> ClusterRead:
    """Group ``ids`` by the node (``route(bucket)``) and bucket that hold their keys."""
    templates, prefix_lengths = _key_templates(entity, n_buckets)
    buckets = ids % n_buckets
    present = np.flatnonzero(np.bincount(buckets, minlength=n_buckets))
    nodes: dict[str, int] = {}
    rank = np.zeros(n_buckets, dtype=np.int64)
    for b in present.tolist():
        rank[b] = nodes.setdefault(route(b), len(nodes))
    group = rank[buckets] * n_buckets + buckets
    order = np.argsort(group, kind="stable")
    sorted_ids, sorted_group = ids[order], group[order]
    pairs = _length_id_pairs(sorted_ids, prefix_lengths[sorted_ids % n_buckets])
    starts = np.flatnonzero(np.diff(sorted_group, prepend=-1))
    ends = np.append(starts[1:], ids.size)
    # A node's groups are contiguous in ``order``: its commands take one run of the pairs.
    names = list(nodes)
    templates_of: dict[str, list[bytes]] = {name: [] for name in names}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        g = int(sorted_group[start])
        name = names[g // n_buckets]
        templates_of[name].append(mget_head(end - start) + templates[g % n_buckets] * (end - start))
        first.setdefault(name, start)
        last[name] = end
    commands = {
        name: (
            b"".join(templates_of[name]) % tuple(pairs[2 * first[name] : 2 * last[name]]),
            len(templates_of[name]),
        )
        for name in names
    }
    return ClusterRead(order, commands)
