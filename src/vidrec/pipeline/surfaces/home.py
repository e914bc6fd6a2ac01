"""The home feed: sources → hydration → filters → ranking → mixers. Unknown or anonymous
users get the trending surface for their region instead (cold start, not an error)."""

from __future__ import annotations

from vidrec.config import ServingConfig
from vidrec.pipeline.effects.impression_log import ImpressionLog
from vidrec.pipeline.hydrators.user_context import UserContextStage
from vidrec.pipeline.hydrators.video_features import VideoFeatures
from vidrec.pipeline.runner import Surface
from vidrec.pipeline.scorers.triton_ranker import TritonRanker
from vidrec.pipeline.sources.fresh import Fresh
from vidrec.pipeline.sources.item_item import ItemItem
from vidrec.pipeline.sources.same_creator import SameCreator
from vidrec.pipeline.sources.trending import Trending
from vidrec.pipeline.sources.two_tower import TwoTower
from vidrec.pipeline.surfaces.common import feed_mixers, safety_filters
from vidrec.pipeline.surfaces.deps import PipelineDeps
from vidrec.pipeline.surfaces.trending import trending_surface


def home_surface(deps: PipelineDeps, cfg: ServingConfig) -> Surface:
    r = deps.retrieval
    return Surface(
        name="home",
        context=UserContextStage(deps.features),
        sources=(
            TwoTower(r, cfg.two_tower_k),
            ItemItem(r, cfg.related_k),
            Trending(r, cfg.trending_k, cfg.default_region),
            Fresh(r, cfg.fresh_k),
            SameCreator(r, cfg.same_creator_k),
        ),
        filters=safety_filters(),
        hydrators=(VideoFeatures(deps.features),),
        scorers=(TritonRanker(deps.ranker, deps.head_weights, cfg.rank_top_n),),
        mixers=feed_mixers(cfg),
        effects=(ImpressionLog(deps.impressions),),
        fallback=deps.fallback,
        cold_start=trending_surface(deps, cfg, name="home_cold_start"),
    )
