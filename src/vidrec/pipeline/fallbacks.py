"""fallback/popular — the last-resort list, served from process memory.

Refreshed from retrieval ``popular`` (:mod:`vidrec.pipeline.sources.popular`) at most every
``refresh_s`` (retried sooner after a failure); while retrieval is down the last good copy is
served. Never loaded and unreachable: ``DependencyError("no_data")``, which the runner turns
into an empty answer with that reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vidrec.pipeline.base import DependencyError, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates, Retrieved
from vidrec.pipeline.clients import RetrievalClient
from vidrec.pipeline.resilience import as_dependency_error
from vidrec.pipeline.retrievers import Query
from vidrec.pipeline.sources.popular import POPULAR_NOW


class PopularList:
    name = "popular"
    policy = Policy.OPEN

    def __init__(
        self,
        retrieval: RetrievalClient,
        refresh_s: float = 60.0,
        k: int = 200,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retrieval, self.refresh_s, self.k = retrieval, refresh_s, k
        self.retry_s = min(retry_s, refresh_s)
        self._clock = clock
        self._cached: Retrieved | None = None
        self._next_refresh = float("-inf")

    async def refresh(self) -> None:
        """Reload now (also at startup, so the first failure already has a list)."""
        self._next_refresh = self._clock() + self.retry_s
        self._cached = await self.retrieval.retrieve("popular", Query(), self.k)
        self._next_refresh = self._clock() + self.refresh_s

    async def __call__(self, ctx: RequestContext) -> Candidates:
        if self._clock() >= self._next_refresh:
            try:
                await self.refresh()
            except Exception as exc:
                if as_dependency_error(exc) is None:
                    raise
        if self._cached is None:
            raise DependencyError("no_data", "popular list never loaded")
        return Candidates.from_retrieved(self._cached, self.name, explanation=POPULAR_NOW)
