"""source/classics — the oldest videos of the catalogue, a source written by the recipe.

This file is the whole source: the stage, its retrieval and its explanation. In
``src/vidrec/pipeline/sources/`` it would be registered by the package import; here it is loaded
through ``VIDREC_SERVING__SOURCE_MODULES=tests.sources.classics``.
"""

from __future__ import annotations

import numpy as np

from vidrec.contracts.catalogue import Catalogue
from vidrec.pipeline.base import RequestContext
from vidrec.pipeline.candidates import Retrieved
from vidrec.pipeline.retrievers import Corpus, Query, retriever
from vidrec.pipeline.sources.base import Found, RetrievalSource

EXPLANATION = "a classic"


class Classics(RetrievalSource):
    name = "classics"

    def query(self, ctx: RequestContext) -> Query | None:
        return Query()

    @staticmethod
    def explain(found: Found, ctx: RequestContext) -> str:
        return EXPLANATION


def oldest_first(cat: Catalogue) -> np.ndarray:
    return np.lexsort((cat.video_id, cat.upload_ts))


@retriever("classics", prepare=oldest_first)
def classics(corpus: Corpus, query: Query, k: int) -> Retrieved:
    rows = corpus.prepared("classics")[:k]
    return corpus.rows(rows, np.linspace(1.0, 0.5, rows.size))
