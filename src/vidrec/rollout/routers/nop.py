"""No traffic router: plain Kubernetes, or blue-green where a Service selector flip is enough.

It remembers the weights it was given so the engine's read-back sees what it asked for.
"""

from __future__ import annotations

from vidrec.rollout.routers.base import RouteTarget, check_weights


class NopRouter:
    def __init__(self, target: RouteTarget) -> None:
        self.target = target
        self._weights = (100, 0)

    def reconcile(self) -> None:
        return None

    def set_weights(self, stable: int, candidate: int) -> None:
        check_weights(stable, candidate)
        self._weights = (stable, candidate)

    def get_weights(self) -> tuple[int, int]:
        return self._weights

    def finalize(self) -> None:
        return None
