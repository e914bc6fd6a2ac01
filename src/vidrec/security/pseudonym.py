"""Keyed pseudonyms for user ids: ``HMAC-SHA256(salt, "user:<id>")``, first 63 bits.

What reaches the lake and the logs is the pseudonym, never the id: without the salt (a Secret)
it cannot be reversed or recomputed, and it is still a stable join key, so the offline
pipeline trains on the lake as it is (:mod:`vidrec.offline.privacy`). 63 bits keep the value
a non-negative Int64 (the lake's ``user_id`` column type); collisions are negligible
(~n²/2⁶⁴). An empty salt turns pseudonymisation off (local development): ids pass unchanged.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

SCHEME = "hmac-sha256-63"
MASK = (1 << 63) - 1


class Pseudonymizer:
    def __init__(self, salt: str | bytes) -> None:
        self._salt = salt.encode() if isinstance(salt, str) else salt

    @property
    def enabled(self) -> bool:
        return bool(self._salt)

    def user(self, user_id: int) -> int:
        """The pseudonym of one user id (the id itself when disabled)."""
        if not self._salt:
            return int(user_id)
        digest = hmac.new(self._salt, f"user:{int(user_id)}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") & MASK

    def users(self, user_ids: np.ndarray) -> np.ndarray:
        """Pseudonyms of many ids (int64), hashing each distinct id once."""
        ids = np.asarray(user_ids, dtype=np.int64)
        if not self._salt or ids.size == 0:
            return ids.copy()
        uniq, inverse = np.unique(ids, return_inverse=True)
        mapped = np.fromiter((self.user(int(u)) for u in uniq), np.int64, uniq.size)
        return mapped[inverse].reshape(ids.shape)

    def fingerprint(self) -> str:
        """Names the salt without revealing it: files record it, readers check it matches."""
        if not self._salt:
            return ""
        return hmac.new(self._salt, b"vidrec-salt-fingerprint", hashlib.sha256).hexdigest()[:16]

    def label(self) -> str:
        """``<scheme>:<fingerprint>`` as stored in lake metadata; "" when disabled."""
        return f"{SCHEME}:{self.fingerprint()}" if self._salt else ""
