"""context/user_context — user vector and session state in one feature-store round trip.

CLOSED: without it the safety filters (not-interested, blocked) have nothing to filter by."""

from __future__ import annotations

from vidrec.pipeline.base import Policy, RequestContext, UserContext
from vidrec.pipeline.clients import FeatureClient
from vidrec.pipeline.sources.base import required


class UserContextStage:
    name = "user_context"
    policy = Policy.CLOSED

    def __init__(self, features: FeatureClient) -> None:
        self.features = features

    async def __call__(self, ctx: RequestContext) -> UserContext:
        user_id = required(ctx.user_id, "user_id", ctx.surface)
        return await self.features.user_context(user_id, ctx.region)
