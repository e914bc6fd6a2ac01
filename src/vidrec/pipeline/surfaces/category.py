"""A category page: popular videos of the category plus the user's two-tower results
restricted to it (CategoryFilter). No category spread: there is one category."""

from __future__ import annotations

from vidrec.config import ServingConfig
from vidrec.pipeline.effects.impression_log import ImpressionLog
from vidrec.pipeline.filters.category import CategoryFilter
from vidrec.pipeline.gates import KnownUserOnly
from vidrec.pipeline.hydrators.user_context import UserContextStage
from vidrec.pipeline.hydrators.video_features import VideoFeatures
from vidrec.pipeline.runner import Surface
from vidrec.pipeline.scorers.triton_ranker import TritonRanker
from vidrec.pipeline.sources.category import CategorySource
from vidrec.pipeline.sources.two_tower import TwoTower
from vidrec.pipeline.surfaces.common import feed_mixers, safety_filters
from vidrec.pipeline.surfaces.deps import PipelineDeps


def category_surface(deps: PipelineDeps, cfg: ServingConfig) -> Surface:
    r = deps.retrieval
    return Surface(
        name="category",
        context=UserContextStage(deps.features),
        sources=(CategorySource(r, cfg.trending_k), TwoTower(r, cfg.two_tower_k)),
        filters=(CategoryFilter(), *safety_filters()),
        hydrators=(KnownUserOnly(VideoFeatures(deps.features)),),
        scorers=(TritonRanker(deps.ranker, deps.head_weights, cfg.rank_top_n),),
        mixers=feed_mixers(cfg, spread=False),
        effects=(ImpressionLog(deps.impressions),),
        fallback=deps.fallback,
    )
