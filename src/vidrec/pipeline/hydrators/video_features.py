"""hydrator/video_features — packed VIDEO_SPEC vectors for every candidate, in ONE call.

OPEN: without features the ranker cannot score, and the runner serves retrieval order."""

from __future__ import annotations

from vidrec.features.spec import VIDEO_SPEC
from vidrec.pipeline.base import Candidate, DependencyError, Policy, RequestContext
from vidrec.pipeline.clients import FeatureClient


class VideoFeatures:
    name = "video_features"
    policy = Policy.OPEN
    deadline_ms = 20

    def __init__(self, features: FeatureClient) -> None:
        self.features = features

    async def __call__(self, ctx: RequestContext, cands: list[Candidate]) -> list[Candidate]:
        if not cands:
            return []
        matrix, present = await self.features.video_vectors([c.video_id for c in cands])
        if matrix.shape != (len(cands), VIDEO_SPEC.dim) or present.shape != (len(cands),):
            raise DependencyError(
                "error", f"video_vectors: got {matrix.shape}/{present.shape} for {len(cands)} ids"
            )
        for c, row, ok in zip(cands, matrix, present.tolist(), strict=True):
            c.features = row if ok else None
        return list(cands)
