"""Variant routing: validation, JSON round trip, stickiness, minimal movement."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.contracts.routing import (
    DEFAULT_TABLE,
    RoutingTable,
    VariantRoute,
    assign_variant,
    bucket_of,
)

SALT = "test-salt"
USERS = range(20_000)


def table(*weights: tuple[str, float]) -> RoutingTable:
    return RoutingTable(tuple(VariantRoute(n, w, i + 1) for i, (n, w) in enumerate(weights)))


def assignment(t: RoutingTable) -> np.ndarray:
    return np.array([assign_variant(u, t, SALT).name for u in USERS])


def test_default_table_routes_everyone_to_stable() -> None:
    assert {assign_variant(u, DEFAULT_TABLE, SALT).name for u in range(500)} == {"stable"}


def test_json_round_trip() -> None:
    t = RoutingTable((VariantRoute("stable", 87.5, 3), VariantRoute("canary", 12.5, 4)), revision=7)
    assert RoutingTable.from_json(t.to_json()) == t


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"variants": [{"name": "a", "weight_percent": 90, "model_version": 1}]}', "sum to 100"),
        (
            '{"variants": [{"name": "a", "weight_percent": 50, "model_version": 1},'
            ' {"name": "a", "weight_percent": 50, "model_version": 2}]}',
            r"variants\[1\].name",
        ),
        ('{"variants": [{"name": "a", "weight_percent": 100}]}', r"variants\[0\].model_version"),
        ('{"variants": [{"name": "a", "weight_percent": 101, "model_version": 1}]}', "weight"),
        ('{"variants": [{"name": "", "weight_percent": 100, "model_version": 1}]}', "name"),
        ('{"variants": []}', "variants"),
        ("[1]", "object"),
        ("not json", "JSON"),
    ],
)
def test_invalid_tables_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RoutingTable.from_json(text)


def test_bucket_is_deterministic_and_salted() -> None:
    assert bucket_of(42, SALT) == bucket_of("42", SALT)
    buckets = np.array([bucket_of(u, SALT) for u in range(2000)])
    other = np.array([bucket_of(u, "other") for u in range(2000)])
    assert (buckets != other).mean() > 0.99
    assert buckets.min() >= 0 and buckets.max() < 10_000


def test_split_matches_weights() -> None:
    shares = {
        n: (assignment(table(("stable", 90), ("canary", 10))) == n).mean()
        for n in ("stable", "canary")
    }
    assert shares["canary"] == pytest.approx(0.10, abs=0.01)


def test_users_are_sticky_while_weights_do_not_change() -> None:
    t = table(("stable", 70), ("canary", 30))
    assert (assignment(t) == assignment(RoutingTable.from_json(t.to_json()))).all()


@pytest.mark.parametrize(
    ("before", "after", "src", "dst"),
    [
        ((("stable", 95), ("canary", 5)), (("stable", 75), ("canary", 25)), "stable", "canary"),
        ((("stable", 50), ("canary", 50)), (("stable", 100), ("canary", 0)), "canary", "stable"),
        ((("a", 40), ("b", 30), ("c", 30)), (("a", 40), ("b", 10), ("c", 50)), "b", "c"),
        ((("a", 40), ("b", 30), ("c", 30)), (("a", 60), ("b", 10), ("c", 30)), "b", "a"),
    ],
)
def test_moving_weight_only_moves_users_between_the_two_variants(
    before: tuple[tuple[str, float], ...],
    after: tuple[tuple[str, float], ...],
    src: str,
    dst: str,
) -> None:
    old, new = assignment(table(*before)), assignment(table(*after))
    moved = old != new
    assert moved.any()
    assert set(old[moved]) == {src} and set(new[moved]) == {dst}
    w_old, w_new = dict(before)[src], dict(after)[src]
    assert moved.mean() == pytest.approx((w_old - w_new) / 100, abs=0.01)
