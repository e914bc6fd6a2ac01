"""Notifiers: where rollout transitions are posted besides Kubernetes Events.

As in Flagger, a notifier is one method, and the factory returns :class:`NullNotifier`
when nothing is configured, so an alerting backend can never block or fail a rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

import httpx

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def post(self, reason: str, message: str) -> None:
        """Deliver one transition (``reason`` is the Event reason, e.g. ``RolledBack``)."""
        ...


class NullNotifier:
    """Posts nowhere."""

    def post(self, reason: str, message: str) -> None:
        return None


class WebhookNotifier:
    """Slack-style incoming webhook (``{"text": ...}``; Mattermost and Rocket.Chat take the
    same body). Delivery is best effort: a slow or failing hook is logged and counted in
    ``failures``, never raised — an alerting outage must not stall a rollback."""

    WARNINGS = frozenset({"RolledBack", "Failed", "Paused"})

    def __init__(self, params: Mapping[str, str]) -> None:
        url = params["url"]
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"notifier url: expected http(s)://..., got {url!r}")
        self.url = url
        self.channel = params.get("channel", "")
        self.timeout_s = float(params.get("timeout_s", "2"))
        self.failures = 0

    def post(self, reason: str, message: str) -> None:
        icon = ":rotating_light:" if reason in self.WARNINGS else ":arrow_forward:"
        body: dict[str, str] = {"text": f"{icon} *{reason}* {message}"}
        if self.channel:
            body["channel"] = self.channel
        try:
            httpx.post(self.url, json=body, timeout=self.timeout_s).raise_for_status()
        except httpx.HTTPError as exc:
            self.failures += 1
            log.warning("rollout notifier %s: %s (%s dropped)", self.url, exc, reason)


NOTIFIERS: dict[str, Callable[[Mapping[str, str]], Notifier]] = {  # type → factory(params)
    "webhook": WebhookNotifier,
    "slack": WebhookNotifier,
}


def notifier_for(kind: str | None, params: Mapping[str, str] | None = None) -> Notifier:
    """The configured notifier; NullNotifier for none, an unknown kind or a failed build."""
    factory = NOTIFIERS.get(kind or "")
    if factory is None:
        return NullNotifier()
    try:
        return factory(params or {})
    except (ValueError, KeyError, OSError):
        return NullNotifier()
