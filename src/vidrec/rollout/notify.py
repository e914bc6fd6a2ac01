"""Notifiers: where rollout transitions are posted besides Kubernetes Events.

As in Flagger, a notifier is one method, and the factory returns :class:`NullNotifier`
when nothing is configured, so an alerting backend can never block or fail a rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol


class Notifier(Protocol):
    def post(self, reason: str, message: str) -> None:
        """Deliver one transition (``reason`` is the Event reason, e.g. ``RolledBack``)."""
        ...


class NullNotifier:
    """Posts nowhere."""

    def post(self, reason: str, message: str) -> None:
        return None


NOTIFIERS: dict[str, Callable[[Mapping[str, str]], Notifier]] = {}  # type → factory(params)


def notifier_for(kind: str | None, params: Mapping[str, str] | None = None) -> Notifier:
    """The configured notifier; NullNotifier for none, an unknown kind or a failed build."""
    factory = NOTIFIERS.get(kind or "")
    if factory is None:
        return NullNotifier()
    try:
        return factory(params or {})
    except (ValueError, KeyError, OSError):
        return NullNotifier()
