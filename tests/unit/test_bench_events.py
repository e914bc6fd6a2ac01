"""The event bench's pure helpers: histogram quantiles, metric scrapes, generated events."""

from __future__ import annotations

import itertools
import math
import random

import polars as pl
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from vidrec.events.processor_metrics import PrometheusEvents
from vidrec.schema import EngagementEvent
from vidrec_dev.bench.events import EVENT_MIX, histogram_quantile, make_events, parse_scrape

INF = math.inf


def test_quantile_interpolates_within_the_bucket() -> None:
    buckets = [(0.1, 0.0), (0.2, 10.0), (0.5, 10.0), (INF, 10.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.15)
    assert histogram_quantile(buckets, 1.0) == pytest.approx(0.2)


def test_quantile_in_the_inf_bucket_is_the_highest_bound() -> None:
    assert histogram_quantile([(1.0, 1.0), (INF, 4.0)], 0.99) == 1.0


def test_quantile_without_samples_is_nan() -> None:
    assert math.isnan(histogram_quantile([(1.0, 0.0), (INF, 0.0)], 0.5))
    assert math.isnan(histogram_quantile([], 0.5))


def test_scrape_deltas_give_the_quantiles_of_the_window() -> None:
    registry = CollectorRegistry()
    events = PrometheusEvents(registry, "c")
    events.processed(5)
    events.lag([20.0] * 5)  # before the window: slow
    before = parse_scrape(generate_latest(registry).decode())
    events.processed(3)
    events.failed(1)
    events.lag([0.07, 0.07, 0.07])  # in the window: all in (0.05, 0.1]
    window = parse_scrape(generate_latest(registry).decode()).since(before)
    assert (window.processed, window.failed) == (3.0, 1.0)
    assert window.buckets[-1] == (INF, 3.0)
    assert 0.05 < histogram_quantile(window.buckets, 0.99) <= 0.1


def test_generated_events_are_valid_and_follow_the_log() -> None:
    rows = pl.DataFrame(
        {
            "user_id": [1, 2],
            "video_id": [10, 20],
            "video_duration_ms": [30_000, None],
            "region": ["us", None],
            "device": ["ios", "web"],
        }
    )
    events = make_events(rows, random.Random(0), 400, 1_700_000_000_000, itertools.count())
    parsed = [EngagementEvent.model_validate(e) for e in events]
    assert len({e.event_id for e in parsed}) == 400
    assert {(e.user_id, e.video_id) for e in parsed} <= {(1, 10), (2, 20)}
    assert {e.type.value for e in parsed} == {t for t, _ in EVENT_MIX}
    watches = [e for e in parsed if e.type.value == "watch"]
    assert all(0 < e.watch_ms <= max(e.video_duration_ms, 1_001) for e in watches)
