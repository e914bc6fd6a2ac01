"""Trending from the event stream: the serving process refreshes its trending table from the
decayed per-region sorted sets the event processor maintains (`vidrec.contracts.trending`).

A request never waits on Redis for trending: a background thread pulls each region's top-k
every few seconds and swaps it into the retrieval state; a region with no live data keeps the
table computed from the artefact's log, and a Redis fault keeps the last good table.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from vidrec.backends.serving_state import ServingState
from vidrec.contracts.trending import TrendingSets

log = logging.getLogger(__name__)


class LiveTrending:
    def __init__(
        self,
        trending: TrendingSets,
        state: ServingState,
        regions: tuple[str, ...],
        k: int,
        refresh_s: float = 5.0,
    ) -> None:
        self.trending, self.state, self.regions = trending, state, regions
        self.k, self.refresh_s = k, refresh_s
        self.refreshed = 0  # regions updated from live data (read by tests and metrics)
        self.failures = 0
        self._stop = threading.Event()

    def refresh_once(self, now_ms: int | None = None) -> int:
        """Swap in live top-k per region; returns how many regions had live data."""
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        updated = 0
        for region in self.regions:
            top = self.trending.top(region, self.k, now)
            if top:
                ids = np.fromiter((v for v, _ in top), np.int64, len(top))
                scores = np.fromiter((s for _, s in top), np.float64, len(top))
                self.state.trending[region] = (ids, scores)  # one atomic dict assignment
                updated += 1
        self.refreshed += updated
        return updated

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh_once()
            except Exception:  # a Redis fault: keep serving the last good table
                self.failures += 1
                log.exception("live trending refresh failed; keeping the last table")

    def start(self) -> LiveTrending:
        threading.Thread(target=self._loop, name="live-trending", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
