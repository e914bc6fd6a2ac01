"""Related videos (watch page): neighbours of the anchor, more from its creator, and — for a
known user — item-item from their own history. The anchor itself is never returned.

The page answers "related to V": at least :data:`ANCHOR_SHARE` of it comes from V's
neighbours whenever V has that many (:class:`~vidrec.pipeline.mixers.anchor_share.AnchorShare`:
V's neighbours take every other slot from the top; the user's history and V's creator fill
the rest). A V the catalogue does not hold is :class:`~vidrec.pipeline.base.UnknownVideo`
(the API's 404), raised by the anchor source.

Anonymous viewers are served without personal filters or ranking (retrieval order)."""

from __future__ import annotations

from vidrec.config import ServingConfig
from vidrec.pipeline.effects.impression_log import ImpressionLog
from vidrec.pipeline.filters.category import AnchorFilter
from vidrec.pipeline.gates import KnownUserOnly
from vidrec.pipeline.hydrators.user_context import UserContextStage
from vidrec.pipeline.hydrators.video_features import VideoFeatures
from vidrec.pipeline.mixers.anchor_share import AnchorShare
from vidrec.pipeline.runner import Surface
from vidrec.pipeline.scorers.triton_ranker import TritonRanker
from vidrec.pipeline.sources.anchor import Anchor
from vidrec.pipeline.sources.item_item import ItemItem
from vidrec.pipeline.sources.same_creator import SameCreator
from vidrec.pipeline.surfaces.common import feed_mixers, safety_filters
from vidrec.pipeline.surfaces.deps import PipelineDeps

ANCHOR_SHARE = 0.5
"""The least share of a related page that comes from the anchor's own neighbours."""


def related_surface(deps: PipelineDeps, cfg: ServingConfig) -> Surface:
    r = deps.retrieval
    return Surface(
        name="related",
        context=UserContextStage(deps.features),
        sources=(
            Anchor(r, cfg.related_k),
            SameCreator(r, cfg.same_creator_k, seeds="anchor"),
            ItemItem(r, cfg.related_k),
        ),
        filters=(AnchorFilter(), *safety_filters()),
        hydrators=(KnownUserOnly(VideoFeatures(deps.features)),),
        scorers=(TritonRanker(deps.ranker, deps.head_weights, cfg.rank_top_n),),
        mixers=feed_mixers(cfg, share=AnchorShare(ANCHOR_SHARE)),
        effects=(ImpressionLog(deps.impressions),),
        fallback=deps.fallback,
    )
