"""Per-client token buckets: ``rate`` tokens per second, at most ``burst`` saved up.

One bucket per client id (API-key id, JWT ``sub`` or remote address), in this process: the
limit is per replica (a fleet-wide limit of ``N x rate`` with N replicas), which costs no
round trip on the hot path. Idle buckets are evicted beyond ``max_clients`` (least recently
seen first), so a flood of distinct clients cannot grow memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0  # when refused: how long until one token is back

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` is whole seconds; round up so the retry is not refused again."""
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOW = Decision(True)


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int = 0,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s < 0 or burst < 0:
            raise ValueError(f"rate limit: rate {rate_per_s} and burst {burst} must be >= 0")
        self.rate = float(rate_per_s)
        self.burst = float(burst or max(1.0, 2 * rate_per_s))
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, client: str, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from ``client``'s bucket, or say how long to wait."""
        if not self.enabled:
            return ALLOW
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= cost:
                decision, tokens = ALLOW, tokens - cost
            else:
                decision = Decision(False, (cost - tokens) / self.rate)
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return decision
