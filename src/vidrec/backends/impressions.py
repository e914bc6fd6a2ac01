"""The impression log writer: one Redis Streams entry per served page.

The entry (:func:`vidrec.contracts.impressions.impression_fields`) is written once per
request, after the response, with an approximate MAXLEN so the stream trims cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.cluster import RedisCluster

from vidrec.backends.calls import BlockingCalls
from vidrec.config import ServingConfig
from vidrec.contracts.impressions import VARIANT_TTL_S, impression_fields
from vidrec.contracts.keys import request_variant_key
from vidrec.features.stores import on_owner
from vidrec.pipeline.base import Candidate
from vidrec.pipeline.resilience import CircuitBreaker
from vidrec.security.pseudonym import Pseudonymizer


class RedisStreamImpressionSink:
    """:class:`~vidrec.pipeline.clients.ImpressionSink`: one XADD per request."""

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        stream: str,
        maxlen: int,
        *,
        timeout_s: float = 0.05,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 16,
        pseudonyms: Pseudonymizer | None = None,
    ) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.timeout_s = timeout_s
        # The stream is a log: user ids are pseudonymous in it (vidrec.security.pseudonym).
        self.pseudonyms = pseudonyms or Pseudonymizer("")
        breaker = breaker or CircuitBreaker.of(ServingConfig(), "impressions")
        self._calls = BlockingCalls(breaker, max_concurrency)

    async def log(
        self,
        request_id: str,
        variant: str,
        user_id: int | None,
        served: Sequence[Candidate],
        now_ms: int,
    ) -> None:
        logged_id = None if user_id is None else self.pseudonyms.user(user_id)
        fields = impression_fields(
            request_id, variant, logged_id, [c.video_id for c in served],
            [c.score for c in served], [c.source for c in served], now_ms,
        )  # fmt: skip

        variant_key = request_variant_key(request_id)

        def write() -> None:
            on_owner(self.client, self.stream, lambda node: node.xadd(
                self.stream, fields, maxlen=self.maxlen, approximate=True,  # type: ignore[arg-type]
            ))  # fmt: skip
            # Which variant served this request: the event processor attributes the clicks
            # and watches that come back with this request_id to it (rollout quality gates).
            on_owner(self.client, variant_key,
                     lambda node: node.set(variant_key, variant, ex=VARIANT_TTL_S))  # fmt: skip

        await self._calls.run(write, self.timeout_s)
