"""Model variants: which ranker version a request is scored by, sticky per user.

The rollout operator writes a :class:`RoutingTable` (JSON, in Redis under
``ServingConfig.routing_key``); the serving side calls :func:`assign_variant` per request. A
key hashes (blake2b of salt + key) to one of 10,000 buckets, and the variants own contiguous
bucket ranges in table order. So a user keeps their variant while the weights do not change,
and moving weight between two *neighbouring* variants (a rollout's stable → candidate, which
the operator keeps adjacent) only moves users between those two.

Where the split happens decides how a request learns its variant. ``split: serving`` (the
gateway-table routers): serving picks the variant and asks Triton for its version.
``split: upstream`` (KServe, Gateway API): something between serving and Triton splits the
traffic, so serving asks for no version and labels each request with the variant whose
version Triton reports having run (:meth:`RoutingTable.variant_of_version`); the weights in
such a table only mirror the upstream split.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

N_BUCKETS = 10_000
SERVING_SPLIT, UPSTREAM_SPLIT = "serving", "upstream"
SPLITS = (SERVING_SPLIT, UPSTREAM_SPLIT)
UNATTRIBUTED = "unattributed"
"""The variant of a request no model answered under an upstream split (a degraded answer):
nothing says which replica failed it."""
UNKNOWN_VARIANT = "unknown"
"""The variant of a request answered by a model version no variant of the table names."""
_BUCKETS_PER_PERCENT = N_BUCKETS // 100


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight_percent: float  # 0..100, resolution 0.01 (one bucket)
    model_version: int  # Triton model version serving this variant

    def validate(self, where: str) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"{where}.name: must be a non-empty string, got {self.name!r}")
        w = self.weight_percent
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 100:
            raise ValueError(f"{where}.weight_percent: must be in [0, 100], got {w!r}")
        if not math.isclose(w * _BUCKETS_PER_PERCENT, round(w * _BUCKETS_PER_PERCENT)):
            raise ValueError(f"{where}.weight_percent: resolution is 0.01, got {w!r}")
        v = self.model_version
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{where}.model_version: must be an int >= 1, got {v!r}")

    @property
    def buckets(self) -> int:
        return round(self.weight_percent * _BUCKETS_PER_PERCENT)


@dataclass(frozen=True)
class RoutingTable:
    """Variants in allocation order; weights sum to 100. ``revision`` is bumped by the writer."""

    variants: tuple[VariantRoute, ...]
    revision: int = 0
    split: str = SERVING_SPLIT

    def __post_init__(self) -> None:
        if not isinstance(self.variants, tuple) or not self.variants:
            raise ValueError("variants: must be a non-empty tuple of VariantRoute")
        names: set[str] = set()
        for i, route in enumerate(self.variants):
            if not isinstance(route, VariantRoute):
                raise ValueError(f"variants[{i}]: must be a VariantRoute, got {route!r}")
            route.validate(f"variants[{i}]")
            if route.name in names:
                raise ValueError(f"variants[{i}].name: duplicate variant {route.name!r}")
            names.add(route.name)
        total = sum(r.buckets for r in self.variants)
        if total != N_BUCKETS:
            raise ValueError(f"variants.weight_percent: must sum to 100, got {total / 100:g}")
        if isinstance(self.revision, bool) or not isinstance(self.revision, int):
            raise ValueError(f"revision: must be an int, got {self.revision!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split: must be one of {SPLITS}, got {self.split!r}")

    @property
    def upstream(self) -> bool:
        return self.split == UPSTREAM_SPLIT

    def route(self, name: str) -> VariantRoute:
        for r in self.variants:
            if r.name == name:
                return r
        raise KeyError(f"variant {name!r} not in routing table")

    def variant_of_version(self, version: int) -> str | None:
        """The variant whose model version is ``version`` (the first, in table order)."""
        for r in self.variants:
            if r.model_version == version:
                return r.name
        return None

    def to_json(self) -> str:
        routes = [
            {"name": r.name, "weight_percent": r.weight_percent, "model_version": r.model_version}
            for r in self.variants
        ]
        body = {"revision": self.revision, "variants": routes, "split": self.split}
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RoutingTable:
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"routing table: not JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ValueError("routing table: must be a JSON object")
        items = raw.get("variants")
        if not isinstance(items, list):
            raise ValueError("variants: must be a list")
        routes = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"variants[{i}]: must be an object")
            for key in ("name", "weight_percent", "model_version"):
                if key not in item:
                    raise ValueError(f"variants[{i}].{key}: missing")
            routes.append(VariantRoute(item["name"], item["weight_percent"], item["model_version"]))
        return cls(
            tuple(routes), revision=raw.get("revision", 0), split=raw.get("split", SERVING_SPLIT)
        )


DEFAULT_TABLE = RoutingTable((VariantRoute("stable", 100, 1),))


def bucket_of(key: str | int, salt: str) -> int:
    """Deterministic bucket 0..N_BUCKETS-1 (stable across processes, unlike ``hash``)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % N_BUCKETS


def assign_variant(key: str | int, table: RoutingTable, salt: str) -> VariantRoute:
    """The variant owning ``key``'s bucket (cumulative weights in table order)."""
    bucket = bucket_of(key, salt)
    upper = 0
    for route in table.variants:
        upper += route.buckets
        if bucket < upper:
            return route
    raise AssertionError("unreachable: weights sum to N_BUCKETS")  # validated in __post_init__
