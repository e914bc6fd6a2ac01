"""The bench's data step on a real Redis Cluster: the demo's users and sessions from
``prepare``, then every video of a scale catalogue with a vector, and the serving table that
``ServingState`` reads (what ``vidrec bench serving`` and the scripts beside it start from)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tests.integration.test_stack import stack_config
from vidrec.backends.serving_state import ServingState
from vidrec.features import VIDEO_ENTITY, VIDEO_SPEC, unpack_many
from vidrec_dev.bench.scale_artefacts import write_scale_artefacts
from vidrec_dev.bench.serving import scale_data_up
from vidrec_dev.stack import Stack

pytestmark = pytest.mark.integration
N_VIDEOS = 12_000  # past KuaiRec's 10,728 ids: real and synthetic videos both


def test_scale_data_up_gives_every_video_a_vector(artefacts: Path, tmp_path: Path) -> None:
    scale = write_scale_artefacts(artefacts, tmp_path / "scale", N_VIDEOS, Console(quiet=True),
                                  neighbours_k=10)  # fmt: skip
    stack = Stack(stack_config(tmp_path / "run"), scale, Console(quiet=True))
    try:
        table, store = scale_data_up(stack, scale)
        try:
            ids = table["video_id"].to_numpy()
            assert ids.size == N_VIDEOS
            sample = np.random.default_rng(0).choice(ids, 300, replace=False).tolist()
            values, _, found = unpack_many(VIDEO_SPEC, store.get_many(VIDEO_ENTITY, sample))
            assert found.all()
            assert np.isfinite(values).all()
        finally:
            store.close()
        state = ServingState.load(scale)  # the serving table it wrote is the one serving reads
        assert state.catalogue.video_id.size == N_VIDEOS
    finally:
        stack.down()
