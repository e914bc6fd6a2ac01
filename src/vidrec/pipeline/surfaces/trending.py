"""The trending surface: what is popular in the region.

Anonymous requests (no user id) get trending in retrieval order with the mixers; a known user
additionally gets their safety filters and the ranker (features are only fetched then). It is
also the cold-start answer of the home surface, where onboarding interests (categories picked
at sign-up, `?interests=3,7`) add their popular videos."""

from __future__ import annotations

from vidrec.config import ServingConfig
from vidrec.pipeline.effects.impression_log import ImpressionLog
from vidrec.pipeline.gates import KnownUserOnly
from vidrec.pipeline.hydrators.user_context import UserContextStage
from vidrec.pipeline.hydrators.video_features import VideoFeatures
from vidrec.pipeline.runner import Surface
from vidrec.pipeline.scorers.triton_ranker import TritonRanker
from vidrec.pipeline.sources.fresh import Fresh
from vidrec.pipeline.sources.interests import Interests
from vidrec.pipeline.sources.trending import Trending
from vidrec.pipeline.surfaces.common import feed_mixers, safety_filters
from vidrec.pipeline.surfaces.deps import PipelineDeps


def trending_surface(deps: PipelineDeps, cfg: ServingConfig, name: str = "trending") -> Surface:
    return Surface(
        name=name,
        context=UserContextStage(deps.features),
        sources=(
            Trending(deps.retrieval, cfg.trending_k, cfg.default_region),
            Fresh(deps.retrieval, cfg.fresh_k),
            Interests(deps.retrieval, cfg.trending_k),  # a new user's onboarding picks
        ),
        filters=safety_filters(),
        hydrators=(KnownUserOnly(VideoFeatures(deps.features)),),
        scorers=(TritonRanker(deps.ranker, deps.head_weights, cfg.rank_top_n),),
        mixers=feed_mixers(cfg),
        effects=(ImpressionLog(deps.impressions),),
        fallback=deps.fallback,
    )
