"""Stage groups several surfaces share (so each surface file stays a readable list)."""

from __future__ import annotations

from vidrec.config import ServingConfig
from vidrec.pipeline.base import Filter, Mixer
from vidrec.pipeline.filters.blocked_creators import BlockedCreators
from vidrec.pipeline.filters.not_interested import NotInterested
from vidrec.pipeline.filters.seen import Seen
from vidrec.pipeline.mixers.category_spread import CategorySpread
from vidrec.pipeline.mixers.creator_run import CreatorRun
from vidrec.pipeline.mixers.explain import Explain
from vidrec.pipeline.mixers.exploration import ExplorationSlots
from vidrec.pipeline.mixers.freshness import FreshnessBoost
from vidrec.pipeline.mixers.take import Take


def safety_filters() -> tuple[Filter, ...]:
    """Cheapest first; not-interested and blocked creators are CLOSED."""
    return (Seen(), NotInterested(), BlockedCreators())


def feed_mixers(
    cfg: ServingConfig, *, spread: bool = True, share: Mixer | None = None
) -> tuple[Mixer, ...]:
    """Boost, then ``share`` (a rule on which items make the page, e.g. the related page's
    anchor share: it must come before the reorderings, which keep its set), spread, explore,
    then the creator-run rule last among reorderings, so it holds on the final list; Take
    cuts; Explain labels only what is served."""
    return (
        FreshnessBoost(cfg.freshness_boost, cfg.freshness_half_life_h),
        *((share,) if share is not None else ()),
        *((CategorySpread(cfg.category_max_share),) if spread else ()),
        ExplorationSlots(cfg.exploration_share, cfg.fresh_max_age_h),
        CreatorRun(cfg.max_creator_run),
        Take(),
        Explain(cfg.fresh_max_age_h),
    )
