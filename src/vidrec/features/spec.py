"""Versioned feature layouts: which float sits where in a packed entity vector.

A vector is only meaningful together with the layout that wrote it, so every stored blob
carries :attr:`FeatureSpec.hash`. Changing a field's name, width or order, or bumping the
version, changes the hash, and readers refuse blobs written under another layout instead of
silently misreading them.

All specs are defined here, in one place. The user spec depends on the width of the static
user-feature block, which the data loader owns, hence :func:`user_spec` takes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache

from vidrec.config import DataConfig
from vidrec.schema import N_CATEGORIES

RECENT_CREATORS = 20
"""Creators of the user's most recent watches kept in the user vector (for cross features)."""

SESSION_WINDOW_MS = 30 * 60 * 1000
"""A user's impressions within this window before a request count towards session depth."""


@dataclass(frozen=True)
class FeatureField:
    """One named block of ``dim`` consecutive floats."""

    name: str
    dim: int = 1

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"feature field {self.name!r}: dim must be >= 1, got {self.dim}")


@dataclass(frozen=True)
class FeatureSpec:
    """An ordered, versioned list of fields; the layout of one entity's vector."""

    name: str
    version: int
    fields: tuple[FeatureField, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"feature spec {self.name!r}: duplicate field names in {names}")

    @cached_property
    def dim(self) -> int:
        return sum(f.dim for f in self.fields)

    @cached_property
    def _offsets(self) -> dict[str, slice]:
        offsets: dict[str, slice] = {}
        start = 0
        for f in self.fields:
            offsets[f.name] = slice(start, start + f.dim)
            start += f.dim
        return offsets

    def slice(self, field_name: str) -> slice:
        """Columns of ``field_name`` in a vector (or in the last axis of a matrix)."""
        try:
            return self._offsets[field_name]
        except KeyError:
            raise KeyError(f"feature spec {self.name!r} has no field {field_name!r}") from None

    def canonical_json(self) -> str:
        payload = {
            "name": self.name,
            "version": self.version,
            "fields": [[f.name, f.dim] for f in self.fields],
        }
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    @cached_property
    def hash(self) -> bytes:
        """Stable 8-byte digest of the canonical JSON (same on every machine and run)."""
        return hashlib.blake2b(self.canonical_json().encode(), digest_size=8).digest()


def _fields(*pairs: tuple[str, int]) -> tuple[FeatureField, ...]:
    return tuple(FeatureField(name, dim) for name, dim in pairs)


@lru_cache(maxsize=8)
def user_spec(static_dim: int) -> FeatureSpec:
    """User vector: point-in-time engagement, category affinity, recent creators, static block.

    Counts are stored as ``log1p``; rates in [0, 1]; ``recent_creators`` holds raw creator ids
    (-1 padded) and is used only by cross features, never fed to a model directly.
    """
    if static_dim < 1:
        raise ValueError(f"user_spec: static_dim must be >= 1, got {static_dim}")
    return FeatureSpec(
        name="user",
        version=1,
        fields=_fields(
            ("watches_1d", 1),
            ("watches_7d", 1),
            ("watches_30d", 1),
            ("watches_total", 1),
            ("mean_watch_ratio", 1),
            ("like_rate", 1),
            ("click_rate", 1),
            ("category_affinity", N_CATEGORIES),
            ("recent_creators", RECENT_CREATORS),
            ("static", static_dim),
        ),
    )


VIDEO_SPEC = FeatureSpec(
    name="video",
    version=1,
    fields=_fields(
        # upload_ts split so both parts are exact in float32; age is derived at request time.
        ("upload_day", 1),
        ("upload_sec_of_day", 1),
        ("log_duration_s", 1),
        ("smoothed_ctr", 1),
        ("mean_watch_ratio", 1),
        ("like_rate", 1),
        ("views_1h", 1),
        ("views_1d", 1),
        ("impressions", 1),
        ("categories", N_CATEGORIES),
        ("creator_id", 1),  # exact in float32 (< 2^24); for cross features only
        ("creator_smoothed_ctr", 1),
        ("creator_video_count", 1),
    ),
)
"""Video vector; counts are ``log1p``, category is multi-hot."""

VIDEO_RAW_FIELDS: frozenset[str] = frozenset({"upload_day", "upload_sec_of_day", "creator_id"})
USER_RAW_FIELDS: frozenset[str] = frozenset({"recent_creators"})
"""Fields holding ids or timestamps: inputs to derived features, never model inputs."""


@lru_cache(maxsize=8)
def context_spec(devices: tuple[str, ...] = DataConfig().devices) -> FeatureSpec:
    """Request context: cyclic time, device one-hot (+ unknown), session depth.

    One field per device so the device order is part of the spec hash.
    """
    return FeatureSpec(
        name="context",
        version=1,
        fields=_fields(
            ("hour_sin", 1),
            ("hour_cos", 1),
            ("dow_sin", 1),
            ("dow_cos", 1),
            *((f"device_{d}", 1) for d in (*devices, "unknown")),
            ("session_depth", 1),
        ),
    )


CONTEXT_SPEC = context_spec()
