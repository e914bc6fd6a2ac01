"""Set membership as one vectorised test: the mask every set filter builds."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np


def member(values: np.ndarray, of: Collection[int]) -> np.ndarray:
    """bool mask: ``values[i] in of`` (an empty set matches nothing, without a sort)."""
    if not of:
        return np.zeros(values.shape, dtype=bool)
    return np.isin(values, np.fromiter(of, np.int64, len(of)))
