"""Prometheus over its HTTP API (``/api/v1/query``), with a timeout and retries.

Retries with exponential backoff cover transport errors and 5xx (a restarting Prometheus);
a 4xx (a bad PromQL template) fails at once. An empty vector or NaN is :class:`NoData`
(a fresh candidate has no samples yet, and ``rate()/rate()`` over no traffic is NaN).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from vidrec.rollout.providers.base import ManyValues, NoData, ProviderError


class PrometheusProvider:
    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not address.startswith(("http://", "https://")):
            raise ValueError(f"address: must be an http(s) URL, got {address!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0, got {timeout_s!r}")
        if retries < 0:
            raise ValueError(f"retries: must be >= 0, got {retries!r}")
        self.address = address.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._client = httpx.Client(base_url=self.address, timeout=timeout_s, transport=transport)

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.get(path, params=params)
            except httpx.HTTPError as exc:
                last = exc
                continue
            if response.status_code < 500:
                return response
            last = ProviderError(f"{self.address}{path}: HTTP {response.status_code}")
        raise ProviderError(f"{self.address}{path}: {self.retries + 1} attempts failed: {last}")

    def query(self, promql: str) -> float:
        response = self._get("/api/v1/query", {"query": promql})
        try:
            body: Any = response.json()
        except ValueError as exc:
            raise ProviderError(f"query {promql!r}: response is not JSON") from exc
        if response.status_code != 200 or body.get("status") != "success":
            raise ProviderError(f"query {promql!r}: {body.get('error', response.status_code)}")
        return _single_value(promql, body.get("data", {}))

    def is_online(self) -> bool:
        try:
            return self._get("/-/ready").status_code == 200
        except ProviderError:
            return False

    def close(self) -> None:
        self._client.close()


def _single_value(promql: str, data: dict[str, Any]) -> float:
    """The one number in an instant-query result (vector of one, or a scalar)."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        samples: list[Any] = [result]
    elif kind == "vector" and isinstance(result, list):
        samples = [series.get("value") for series in result]
    else:
        raise ProviderError(f"query {promql!r}: unsupported result type {kind!r}")
    if not samples:
        raise NoData(f"query {promql!r}: no series")
    if len(samples) > 1:
        raise ManyValues(f"query {promql!r}: {len(samples)} series, expected 1")
    try:
        value = float(samples[0][1])
    except (TypeError, ValueError, IndexError) as exc:
        raise ProviderError(f"query {promql!r}: bad sample {samples[0]!r}") from exc
    if math.isnan(value):
        raise NoData(f"query {promql!r}: value is NaN")
    return value
