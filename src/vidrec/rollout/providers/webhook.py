"""Webhook checks: POST a JSON payload, a 2xx answer passes the step (1.0), any other fails it.

Used for pre-rollout gates and in-rollout checks such as a Locust SLA run behind a small
HTTP endpoint. A timeout or an unreachable hook is :class:`NoData` (INCONCLUSIVE), not a
failure: a slow load test should pause the rollout, not roll it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from vidrec.rollout.providers.base import NoData

PASS, FAIL = 1.0, 0.0


class WebhookProvider:
    def __init__(
        self,
        address: str,
        *,
        payload: Mapping[str, Any] | None = None,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not address.startswith(("http://", "https://")):
            raise ValueError(f"address: must be an http(s) URL, got {address!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s!r}")
        self.address = address
        self.payload = dict(payload or {})
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    def query(self, promql: str) -> float:
        """POST the payload (``query`` holds the step's rendered text, if any); 2xx → 1.0."""
        body = {**self.payload, "query": promql} if promql else self.payload
        try:
            response = self._client.post(self.address, json=body)
        except httpx.HTTPError as exc:
            raise NoData(f"webhook {self.address}: no answer ({exc!r})") from exc
        return PASS if response.is_success else FAIL

    def is_online(self) -> bool:
        return True  # a hook may only listen while a check runs: nothing to probe ahead

    def close(self) -> None:
        self._client.close()
