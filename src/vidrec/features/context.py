"""Request-context vectors (:data:`CONTEXT_SPEC`), computed the same way offline and online.

Time is encoded cyclically (23:00 is next to 00:00) in UTC; the device is one-hot with an
``unknown`` slot for devices the spec does not list; session depth is ``log1p`` of the user's
impressions in the :data:`SESSION_WINDOW_MS` before the request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from vidrec.config import DataConfig
from vidrec.features.spec import CONTEXT_SPEC, FeatureSpec

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
_EPOCH_DOW_OFFSET_MS = 3 * DAY_MS  # 1970-01-01 was a Thursday; shift so Monday = 0


def context_vectors(
    ts_ms: np.ndarray | int,
    devices: Sequence[str | None] | pl.Series,
    session_depth: np.ndarray | int,
    spec: FeatureSpec = CONTEXT_SPEC,
    known_devices: tuple[str, ...] = DataConfig().devices,
) -> np.ndarray:
    """Context matrix (B, spec.dim) float32 for B requests (scalars broadcast)."""
    n = len(devices)
    ts = np.broadcast_to(np.asarray(ts_ms, dtype=np.int64), (n,))
    depth = np.broadcast_to(np.asarray(session_depth, dtype=np.float64), (n,))
    out = np.zeros((n, spec.dim), dtype=np.float32)
    hour = 2 * np.pi * (ts % DAY_MS) / DAY_MS
    dow = 2 * np.pi * ((ts + _EPOCH_DOW_OFFSET_MS) % WEEK_MS) / WEEK_MS
    out[:, spec.slice("hour_sin")] = np.sin(hour)[:, None]
    out[:, spec.slice("hour_cos")] = np.cos(hour)[:, None]
    out[:, spec.slice("dow_sin")] = np.sin(dow)[:, None]
    out[:, spec.slice("dow_cos")] = np.cos(dow)[:, None]
    slot_of = {d: spec.slice(f"device_{d}").start for d in known_devices}
    unknown = spec.slice("device_unknown").start
    if isinstance(devices, pl.Series):  # offline: millions of rows, vectorised
        slots = devices.replace_strict(slot_of, default=unknown, return_dtype=pl.Int64).to_numpy()
    else:  # serving: one device per request; a Series costs more than the lookup
        slots = np.fromiter((slot_of.get(d, unknown) for d in devices), np.int64, n)  # type: ignore[arg-type]
    out[np.arange(n), slots] = 1.0
    out[:, spec.slice("session_depth")] = np.log1p(np.maximum(depth, 0))[:, None]
    return out
