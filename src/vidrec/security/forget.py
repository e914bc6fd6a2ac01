"""Right to be forgotten: erase a user's online state, leave a tombstone everything honours.

:meth:`Eraser.forget` (behind ``DELETE /api/v1/users/{id}`` and ``vidrec users forget``)

1. writes the tombstone first — ``tomb:{b<k>}:<pseudonym>`` in the user's own slot, next to
   their session, and ``<pseudonym> → deleted_at_ms`` in the hash ``vidrec:tombstones`` — so
   nothing written after this point can bring the user back:
   the event processor's session script refuses a user whose ``tomb`` key exists (same slot,
   same Lua call: no race), the lake writer drops their events and copies the tombstones into
   the lake (``<lake>/_tombstones/``), and training drops their events and user row;
2. deletes every per-user key: the feature vector ``uf:{b<k>}:<id>`` and the session
   ``ss:{b<k>}:<id>`` (recent watches, seen set, not-interested lists).

Tombstones hold the pseudonym (:mod:`.pseudonym`), not the id. They are permanent: a
forgotten id's events are dropped from then on (ids are not reused). Event-id markers
(``evu:``) and request → variant records (``rv:``) hold no user id; impression-log entries hold
the pseudonym and age out with the stream's MAXLEN.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from vidrec.contracts.keys import tombstone_key, user_keys
from vidrec.security.pseudonym import Pseudonymizer

Client = redis.Redis | RedisCluster
LAKE_TOMBSTONES = "_tombstones"  # under the lake root; "_" keeps it out of event globs


@dataclass(frozen=True)
class Forgotten:
    user_id: int
    deleted_keys: int  # online keys that existed and are gone
    deleted_at_ms: int
    already: bool  # a tombstone existed before this call

    def body(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "deleted_keys": self.deleted_keys,
            "deleted_at_ms": self.deleted_at_ms,
            "tombstone": True,
            "already_forgotten": self.already,
        }


class Eraser:
    def __init__(
        self,
        client: Client,
        pseudonyms: Pseudonymizer,
        n_buckets: int,
        tombstone_hash: str,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.client = client
        self.pseudonyms = pseudonyms
        self.n_buckets = n_buckets
        self.tombstone_hash = tombstone_hash
        self.clock_ms = clock_ms

    def forget(self, user_id: int) -> Forgotten:
        """Tombstone, then delete; idempotent (a second call reports ``already``)."""
        pseudo = self.pseudonyms.user(user_id)
        now = self.clock_ms()
        tomb = tombstone_key(user_id, pseudo, self.n_buckets)
        first = bool(self.client.set(tomb, str(now), nx=True))
        self.client.hsetnx(self.tombstone_hash, str(pseudo), str(now))
        # One slot (the user's bucket): one DEL on standalone and cluster alike.
        deleted = int(self.client.delete(*user_keys(user_id, self.n_buckets)))
        return Forgotten(user_id, deleted, now, already=not first)


def tombstones_in_redis(client: Client, tombstone_hash: str) -> dict[int, int]:
    """Every tombstone: pseudonym → deleted at (ms)."""
    raw = client.hgetall(tombstone_hash)
    return {int(k): int(v) for k, v in raw.items()}


def forgotten_among(client: Client, tombstone_hash: str, pseudonyms: Iterable[int]) -> set[int]:
    """Which of ``pseudonyms`` have a tombstone (one HMGET)."""
    ids = list(dict.fromkeys(int(p) for p in pseudonyms))
    if not ids:
        return set()
    values = client.hmget(tombstone_hash, [str(p) for p in ids])
    return {p for p, v in zip(ids, values, strict=True) if v is not None}


class LakeTombstones:
    """The durable copy in the lake: one small JSON file per pseudonym (idempotent writes,
    no append races between lake writers; the file name is the pseudonym)."""

    def __init__(self, lake: Path) -> None:
        self.dir = lake / LAKE_TOMBSTONES

    def write(self, tombstones: dict[int, int]) -> int:
        """Add missing tombstones; the number added."""
        added = 0
        have = self.read().keys() if self.dir.is_dir() else set()
        for pseudo, at in tombstones.items():
            if pseudo in have:
                continue
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{pseudo}.json"
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"user": pseudo, "deleted_at_ms": at}) + "\n")
            tmp.replace(path)
            added += 1
        return added

    def read(self) -> dict[int, int]:
        if not self.dir.is_dir():
            return {}
        out: dict[int, int] = {}
        for path in self.dir.glob("*.json"):
            row = json.loads(path.read_text())
            out[int(row["user"])] = int(row["deleted_at_ms"])
        return out
