"""Which variant a request is labelled with, from the version Triton ran, under both splits."""

from __future__ import annotations

import asyncio

import pytest

from vidrec.backends.routing import RoutingCache, default_table
from vidrec.contracts.routing import RoutingTable, VariantRoute


def cache(published: list[bytes | None], split: str = "serving") -> RoutingCache:
    def read() -> bytes | None:
        return published[0]

    return RoutingCache(None, "k", "salt", ttl_s=0, reader=read, default=default_table(split))  # type: ignore[arg-type]


TWO = (VariantRoute("stable", 90, 3), VariantRoute("canary", 10, 4))


def test_serving_split_asks_for_the_variants_version_and_keeps_its_label() -> None:
    published: list[bytes | None] = [RoutingTable(TWO).to_json().encode()]
    routing = cache(published)
    asyncio.run(routing.table())
    assert routing.version_for_variant("canary") == "4"
    assert routing.answered_variant("canary", "4") == "canary"
    # The table changed between asking and answering: what ran names the variant.
    assert routing.answered_variant("canary", "3") == "stable"
    assert routing.answered_variant("canary", "9") == "unknown"


def test_upstream_split_asks_for_no_version_and_labels_by_what_ran() -> None:
    published: list[bytes | None] = [None]
    routing = cache(published, split="upstream")
    asyncio.run(routing.table())
    # Nothing published yet: one model serves, whatever its version.
    assert routing.version_for_variant("stable") == ""
    assert routing.answered_variant("unattributed", "7") == "stable"
    published[0] = RoutingTable(TWO, split="upstream").to_json().encode()
    asyncio.run(routing.table())
    assert routing.version_for_variant("canary") == ""
    assert [routing.answered_variant("unattributed", v) for v in ("3", "4", "5", "")] == [
        "stable",
        "canary",
        "unknown",
        "unknown",
    ]


def test_an_unknown_split_names_the_setting() -> None:
    with pytest.raises(ValueError, match="VIDREC_SERVING__RANKER_SPLIT"):
        default_table("sideways")
    with pytest.raises(ValueError, match="split"):
        RoutingTable.from_json('{"variants": [{"name": "a", "weight_percent": 100, '
                               '"model_version": 1}], "split": "sideways"}')  # fmt: skip
