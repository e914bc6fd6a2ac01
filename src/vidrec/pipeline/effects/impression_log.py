"""effect/impression_log — what was served, for training labels and online CTR."""

from __future__ import annotations

from collections.abc import Sequence

from vidrec.pipeline.base import Candidate, Policy, RequestContext
from vidrec.pipeline.clients import ImpressionSink


class ImpressionLog:
    name = "impression_log"
    policy = Policy.OPEN

    def __init__(self, sink: ImpressionSink) -> None:
        self.sink = sink

    async def __call__(self, ctx: RequestContext, served: Sequence[Candidate]) -> None:
        await self.sink.log(ctx.request_id, ctx.variant, ctx.user_id, served, ctx.now_ms)
