"""source/two_tower — user embedding → ANN over item embeddings (the personalised bulk)."""

from __future__ import annotations

from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource, because_you_watched


class TwoTower(RetrievalSource):
    name = "two_tower"

    def query(self, ctx: RequestContext) -> Query | None:
        user = ctx.user
        if user is None or not user.known or user.vector is None:
            return None  # no embedding to search with: cold start is the surface's business
        return Query(user_vector=user.vector, video_ids=user.recent_watches)

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return because_you_watched(found, ctx) or "recommended for you"


@retriever("two_tower", blocking=True)
def two_tower(corpus: Corpus, query: Query, k: int) -> Retrieved:
    """The ONNX user tower, then the ANN index (both release the GIL: a worker thread)."""
    if query.user_vector is None:
        raise ValueError("query.user_vector: required by two_tower")
    ids, scores = corpus.search(corpus.user_embedding(query.user_vector, query.video_ids), k)
    valid = ids[0] >= 0
    return corpus.records(ids[0][valid], scores[0][valid])
