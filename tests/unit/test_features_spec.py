"""FeatureSpec: layout arithmetic and a hash that is stable yet sensitive to every change."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from vidrec.features.spec import CONTEXT_SPEC, VIDEO_SPEC, FeatureField, FeatureSpec, user_spec

BASE = FeatureSpec("demo", 1, (FeatureField("a", 2), FeatureField("b", 3), FeatureField("c", 1)))


def test_dim_and_slices_tile_the_vector() -> None:
    assert BASE.dim == 6
    assert [BASE.slice(n) for n in ("a", "b", "c")] == [slice(0, 2), slice(2, 5), slice(5, 6)]
    with pytest.raises(KeyError, match="'zzz'"):
        BASE.slice("zzz")


def test_hash_is_a_digest_of_the_canonical_json() -> None:
    canonical = json.dumps(
        {"fields": [["a", 2], ["b", 3], ["c", 1]], "name": "demo", "version": 1},
        separators=(",", ":"),
        sort_keys=True,
    )
    assert len(BASE.hash) == 8
    assert BASE.hash == hashlib.blake2b(canonical.encode(), digest_size=8).digest()


def test_hash_is_the_same_in_another_process() -> None:
    code = (
        "from vidrec.features.spec import VIDEO_SPEC, user_spec;"
        "print(VIDEO_SPEC.hash.hex(), user_spec(7).hash.hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [VIDEO_SPEC.hash.hex(), user_spec(7).hash.hex()]


@pytest.mark.parametrize(
    "changed",
    [
        FeatureSpec("demo2", 1, BASE.fields),
        FeatureSpec("demo", 2, BASE.fields),
        FeatureSpec("demo", 1, (FeatureField("a", 2), FeatureField("b", 4), FeatureField("c", 1))),
        FeatureSpec("demo", 1, (FeatureField("a", 2), FeatureField("B", 3), FeatureField("c", 1))),
        FeatureSpec("demo", 1, (FeatureField("b", 3), FeatureField("a", 2), FeatureField("c", 1))),
        FeatureSpec("demo", 1, BASE.fields[:2]),
    ],
)
def test_any_change_changes_the_hash(changed: FeatureSpec) -> None:
    assert changed.hash != BASE.hash


def test_user_spec_width_follows_static_dim() -> None:
    assert user_spec(9).dim - user_spec(4).dim == 5
    assert user_spec(9).hash != user_spec(4).hash
    assert user_spec(9).slice("static").stop == user_spec(9).dim


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        FeatureSpec("x", 1, (FeatureField("a"), FeatureField("a")))
    with pytest.raises(ValueError, match="dim"):
        FeatureField("a", 0)
    with pytest.raises(ValueError, match="static_dim"):
        user_spec(0)


def test_defined_specs_have_distinct_hashes() -> None:
    hashes = {VIDEO_SPEC.hash, CONTEXT_SPEC.hash, user_spec(5).hash}
    assert len(hashes) == 3
