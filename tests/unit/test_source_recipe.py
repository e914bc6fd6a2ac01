"""The "Add a candidate source" recipe (docs/architecture.md), proven by a source written to it.

``tests/sources/classics.py`` is one file — stage, retrieval, explanation — and nothing else in
vidrec names it: retrieval answers it through the generic ``retrieve(name, query, k)``, a
surface that lists it serves it, and Explain labels its items in its own words. The remote half
(the same source answered by the BentoML Retrieval service) is in
``tests/integration/test_remote_retrieval.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import ServingConfig
from vidrec.errors import InputError
from vidrec.pipeline import NullObserver, PipelineRunner, PopularList, RequestContext, Surface
from vidrec.pipeline.mixers.explain import Explain
from vidrec.pipeline.mixers.take import Take
from vidrec.pipeline.retrievers import Query

SOURCE = "tests.sources.classics"


@pytest.fixture(scope="module")
def local(artefacts: Path) -> LocalRetrieval:
    cfg = dataclasses.replace(ServingConfig(), source_modules=(SOURCE,))
    return LocalRetrieval(ServingState.load(artefacts), cfg)


def test_retrieval_answers_the_new_source_by_name(local: LocalRetrieval) -> None:
    found = asyncio.run(local.retrieve("classics", Query(), 7))
    cat = local.catalogue
    oldest = cat.video_id[np.lexsort((cat.video_id, cat.upload_ts))][:7]
    assert [v.video_id for v in found] == oldest.tolist()
    assert all(v.creator_id == cat.creator_id[cat.rows(np.array([v.video_id]))[0][0]]
               for v in found)  # fmt: skip


def test_a_surface_listing_it_serves_it_explained_in_its_own_words(
    local: LocalRetrieval,
) -> None:
    from tests.sources.classics import EXPLANATION, Classics

    surface = Surface(
        name="classics",
        context=None,
        sources=(Classics(local, 20),),
        mixers=(Take(), Explain()),
        fallback=PopularList(local),
    )
    runner = PipelineRunner(NullObserver(), dataclasses.replace(ServingConfig(),
                            deadline_total_ms=5000, deadline_sources_ms=2000))  # fmt: skip
    ctx = RequestContext("r1", "classics", "stable", local.state.clock_ms(), 5)
    served = asyncio.run(runner.run(surface, ctx))
    assert not ctx.degraded, ctx.degraded
    assert len(served) == 5
    assert {c.source for c in served} == {"classics"}
    assert {c.explanation for c in served} == {EXPLANATION}


def test_an_unknown_list_is_named_with_the_known_ones(local: LocalRetrieval) -> None:
    with pytest.raises(KeyError, match=r"no retriever 'nope'.*classics"):
        asyncio.run(local.retrieve("nope", Query(), 3))


def test_a_source_module_that_does_not_import_names_the_setting(artefacts: Path) -> None:
    cfg = dataclasses.replace(ServingConfig(), source_modules=("tests.sources.absent",))
    with pytest.raises(InputError, match=r"serving\.source_modules.*tests\.sources\.absent"):
        LocalRetrieval(ServingState.load(artefacts), cfg)
