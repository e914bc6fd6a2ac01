"""Feature layouts, the packed codec, point-in-time offline features and online stores.

``USER_SPEC``, ``RANKER_INPUT_DIM`` and ``USER_TOWER_DIM`` depend on the width of the static
user features, which the data loader owns (``vidrec.data.USER_STATIC_DIM``); they resolve
lazily so importing this package does not import the loader. Code that already holds a users
table should prefer ``user_spec(width)`` / ``ranker_input_dim(width)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from vidrec.features.codec import CorruptValue, SpecMismatch, pack, pack_many, unpack, unpack_many
from vidrec.features.context import context_vectors
from vidrec.features.materialize import materialize
from vidrec.features.offline import (
    TrainingTables,
    build_training_tables,
    snapshot_users,
    snapshot_videos,
)
from vidrec.features.ranker_input import (
    assemble,
    ranker_input_dim,
    ranker_input_spec,
    user_tower_dim,
    user_tower_input,
    user_tower_spec,
)
from vidrec.features.spec import (
    CONTEXT_SPEC,
    VIDEO_SPEC,
    FeatureField,
    FeatureSpec,
    context_spec,
    user_spec,
)
from vidrec.features.stores import (
    USER_ENTITY,
    VIDEO_ENTITY,
    InMemoryStore,
    OnlineStore,
    RedisClusterStore,
    RedisStore,
    key_for,
    make_store,
)

_STATIC_DEPENDENT: dict[str, Callable[[int], Any]] = {
    "USER_SPEC": user_spec,
    "RANKER_INPUT_DIM": ranker_input_dim,
    "USER_TOWER_DIM": user_tower_dim,
}


def __getattr__(name: str) -> Any:
    if name in _STATIC_DEPENDENT:
        static_dim = importlib.import_module("vidrec.data").USER_STATIC_DIM
        return _STATIC_DEPENDENT[name](static_dim)
    raise AttributeError(f"module 'vidrec.features' has no attribute {name!r}")


__all__ = [
    "CONTEXT_SPEC",
    "USER_ENTITY",
    "VIDEO_ENTITY",
    "VIDEO_SPEC",
    "CorruptValue",
    "FeatureField",
    "FeatureSpec",
    "InMemoryStore",
    "OnlineStore",
    "RedisClusterStore",
    "RedisStore",
    "SpecMismatch",
    "TrainingTables",
    "assemble",
    "build_training_tables",
    "context_spec",
    "context_vectors",
    "key_for",
    "make_store",
    "materialize",
    "pack",
    "pack_many",
    "ranker_input_dim",
    "ranker_input_spec",
    "snapshot_users",
    "snapshot_videos",
    "unpack",
    "unpack_many",
    "user_spec",
    "user_tower_dim",
    "user_tower_input",
    "user_tower_spec",
]
