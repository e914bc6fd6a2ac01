"""hydrator/video_features — packed VIDEO_SPEC vectors for every candidate, in ONE call.

OPEN: without features the ranker cannot score, and the runner serves retrieval order."""

from __future__ import annotations

import numpy as np

from vidrec.features.spec import VIDEO_SPEC
from vidrec.pipeline.base import DependencyError, Policy, RequestContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.clients import FeatureClient


class VideoFeatures:
    name = "video_features"
    policy = Policy.OPEN

    def __init__(self, features: FeatureClient) -> None:
        self.features = features

    async def __call__(self, ctx: RequestContext, cands: Candidates) -> Candidates:
        if not len(cands):
            return cands
        matrix, present = await self.features.video_vectors(cands.video_id)
        if matrix.shape != (len(cands), VIDEO_SPEC.dim) or present.shape != (len(cands),):
            raise DependencyError(
                "error", f"video_vectors: got {matrix.shape}/{present.shape} for {len(cands)} ids"
            )
        return cands.with_(features=matrix, has_features=np.asarray(present, dtype=bool))
