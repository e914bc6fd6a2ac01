"""The request's components alone, one thread each: the floor the served CPU is compared with.

Part of `vidrec bench serving`, on the same scale artefacts and the same stack's users: the user
tower on one user, the ANN search the ``two_tower`` source makes (its user-tower query, k =
``serving.two_tower_k``), and ranker ONNX Runtime on the candidate batch, in-process. Each call
is timed (wall p50) and costed (process CPU per call); the standalone MGET of 500 keys is the
hydration bench's own figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter, process_time

import faiss
import numpy as np

from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.config import ServingConfig
from vidrec.pipeline.base import UserContext
from vidrec.ranking.sessions import cpu_session, ranker_input_width
from vidrec.ranking.signature import RANKER_INPUT
from vidrec_dev.bench.cpu import TreeUsage

CALLS = 300
WARMUP_CALLS = 10


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``seconds``, in ms (NaN when nothing was measured)."""
    return float(np.percentile(np.asarray(seconds) * 1000, q)) if len(seconds) else float("nan")


@dataclass(frozen=True)
class Timed:
    """One component: calls made one after another on one thread."""

    calls: int
    p50_ms: float
    cpu_ms: float  # process CPU per call (every thread of the bench process)

    def to_json(self) -> dict[str, float]:
        return {"calls": self.calls, "p50_ms": self.p50_ms, "cpu_ms": self.cpu_ms}


def timed_calls(call: Callable[[int], object], calls: int = CALLS) -> Timed:
    """``call(i)`` for i in 0..calls-1 after a short warm-up: wall p50 and CPU per call."""
    for i in range(WARMUP_CALLS):
        call(i)
    seconds = []
    cpu0 = process_time()
    for i in range(calls):
        start = perf_counter()
        call(i)
        seconds.append(perf_counter() - start)
    return Timed(calls, percentile_ms(seconds, 50), (process_time() - cpu0) * 1000 / calls)


def server_cpu_ms(before: TreeUsage, after: TreeUsage, calls: int) -> float:
    """A server's CPU per call from two samples of its process tree around ``calls`` calls."""
    return (after.cpu_s - before.cpu_s) * 1000 / max(calls, 1)


def bench_components(
    scale_dir: Path, users: Sequence[UserContext], cfg: ServingConfig, rows: int
) -> dict[str, dict[str, float]]:
    """User tower, ANN (two-tower query) and ranker ORT on ``rows`` rows, each alone."""
    known = [u for u in users if u.known and u.vector is not None]
    if not known:
        raise RuntimeError("components bench: none of the sampled users has a vector")
    state = ServingState.load(scale_dir)
    local = LocalRetrieval(state, cfg)

    def tower(i: int) -> np.ndarray:
        u = known[i % len(known)]
        assert u.vector is not None
        return local.user_embedding(u.vector, u.recent_watches)

    queries = [tower(i) for i in range(len(known))]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        ann = timed_calls(lambda i: state.index.search(queries[i % len(queries)], cfg.two_tower_k))
    finally:
        faiss.omp_set_num_threads(threads)
    ranker = scale_dir / "models" / "ranker.onnx"
    session = cpu_session(ranker, threads=1)
    x = np.random.default_rng(5).standard_normal((rows, ranker_input_width(ranker)), np.float32)
    ort = timed_calls(lambda _: session.run(None, {RANKER_INPUT: x}))
    return {
        "user_tower": timed_calls(tower).to_json(),
        "ann": ann.to_json() | {"k": cfg.two_tower_k, "videos": len(state.index)},
        "ranker_ort": ort.to_json() | {"rows": rows},
    }
