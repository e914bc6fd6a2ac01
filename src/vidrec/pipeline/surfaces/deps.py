"""What the surfaces are wired from: the injected clients and the ranking head weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from vidrec.pipeline.clients import FeatureClient, ImpressionSink, RankerClient, RetrievalClient
from vidrec.pipeline.fallbacks import PopularList


@dataclass(frozen=True)
class PipelineDeps:
    retrieval: RetrievalClient
    features: FeatureClient
    ranker: RankerClient
    impressions: ImpressionSink
    head_weights: Sequence[float]  # RankingConfig.head_weights, RANKER_HEADS order
    # One cached popular list shared by every surface (the last-resort fallback); the
    # composition root passes one sized from ServingConfig.popular_refresh_s / popular_k.
    popular: PopularList | None = field(default=None)

    def __post_init__(self) -> None:
        if self.popular is None:
            object.__setattr__(self, "popular", PopularList(self.retrieval))

    @property
    def fallback(self) -> PopularList:
        assert self.popular is not None  # set in __post_init__
        return self.popular
