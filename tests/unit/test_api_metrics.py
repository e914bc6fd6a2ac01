"""The metrics exposition is valid for Prometheus (real promtool) and bulk observe is exact."""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tests.needs import require_binary
from vidrec.api.request_metrics import PrometheusObserver, observe_many

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def populated() -> PrometheusObserver:
    obs = PrometheusObserver()
    obs.request("home", "stable", 200, 0.031)
    obs.request("home", "", 400, 0.001)
    obs.stage("home", "source/two_tower", "stable", 0.004, "ok")
    obs.candidates("home", "filter/seen", "removed", 12)
    obs.degraded("home", "scorer/triton_ranker", "timeout")
    obs.scores("home", "stable", np.random.default_rng(0).random((50, 3), dtype=np.float32))
    lru = SimpleNamespace(hits=7, misses=3)
    obs.watch_features(SimpleNamespace(lru=lru, videos_requested=10, fill_rate=0.9))  # type: ignore[arg-type]
    return obs


def test_exposition_passes_promtool() -> None:
    require_binary(PROMTOOL, "apt-get install prometheus")
    text = populated().exposition()
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    body = text.decode()
    for name in ("vidrec_request_seconds_bucket", "vidrec_requests_total", "vidrec_degraded_total",
                 "vidrec_stage_candidates_total", "vidrec_lru_hits_total", "vidrec_score_bucket",
                 "vidrec_feature_fill_ratio"):  # fmt: skip
        assert name in body
    assert (
        'vidrec_degraded_total{reason="timeout",stage="scorer/triton_ranker",surface="home"} 1.0'
        in body
    )


def test_4xx_is_counted_but_not_timed() -> None:
    body = populated().exposition().decode()
    assert 'vidrec_requests_total{code="400",endpoint="home",variant="none"} 1.0' in body
    assert 'vidrec_request_seconds_count{endpoint="home",variant="stable"} 1.0' in body


def test_observe_many_equals_observe_one_by_one() -> None:
    values = np.random.default_rng(1).random(1000)
    values[:5] = [0.0, 0.1, 0.5, 1.0, 7.0]  # exact bounds land in their own bucket; 7 → +Inf
    bulk, single = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "h", buckets=(0.1, 0.5, 1.0), registry=bulk)
    h2 = Histogram("h", "h", buckets=(0.1, 0.5, 1.0), registry=single)
    observe_many(h1, values)
    for v in values:
        h2.observe(float(v))

    def samples(r: CollectorRegistry) -> dict[str, float]:
        return {s.name + str(s.labels): s.value for m in r.collect() for s in m.samples
                if not s.name.endswith("_created")}  # fmt: skip

    a, b = samples(bulk), samples(single)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k])
    assert generate_latest(bulk).count(b"h_bucket") == 4
