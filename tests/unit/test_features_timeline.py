"""Timeline answers "events of e before t" exactly, whatever the log's time span."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.features.timeline import TIME_BITS, Timeline

YEAR_MS = 365 * 86_400_000


def _brute_counts(entity: np.ndarray, ts: np.ndarray, qe: np.ndarray, qt: np.ndarray) -> np.ndarray:
    return np.array([np.sum((entity == e) & (ts < t)) for e, t in zip(qe, qt, strict=True)])


def _brute_sums(
    entity: np.ndarray, ts: np.ndarray, values: np.ndarray, qe: np.ndarray, qt: np.ndarray
) -> np.ndarray:
    return np.array([values[(entity == e) & (ts < t)].sum() for e, t in zip(qe, qt, strict=True)])


@pytest.mark.parametrize("span_ms", [3_600_000, 3 * YEAR_MS, 40 * YEAR_MS])
def test_counts_and_sums_match_brute_force_at_any_span(span_ms: int) -> None:
    rng = np.random.default_rng(span_ms % 1000)
    n = 2_000
    start = 631_152_000_000  # 1990: a catalogue of old uploads
    entity = rng.integers(0, 40, n)
    ts = start + rng.integers(0, span_ms, n)
    ts[:50] = ts[50:100]  # ties: an event at exactly t is not "before t"
    values = rng.random((n, 1))
    tl = Timeline(entity, ts, values=values, payload={"v": np.arange(n)})
    qe = rng.integers(0, 45, 500)  # a few entities without events
    qt = np.concatenate([ts[:250], start + rng.integers(-span_ms // 10, span_ms * 2, 250)])
    pos = tl.position(qe, qt)
    first = tl.start(qe)
    np.testing.assert_array_equal(tl.count_between(first, pos), _brute_counts(entity, ts, qe, qt))
    np.testing.assert_allclose(
        tl.sum_between(first, pos)[:, 0], _brute_sums(entity, ts, values[:, 0], qe, qt)
    )


def test_last_before_is_newest_first_across_decades() -> None:
    ts = np.array([0, 10 * YEAR_MS, 20 * YEAR_MS, 30 * YEAR_MS]) + 631_152_000_000
    assert ts.max() - ts.min() > 1 << TIME_BITS
    tl = Timeline(np.zeros(4, dtype=np.int64), ts, payload={"v": np.array([5, 6, 7, 8])})
    q = np.array([0])
    got = tl.last_before("v", tl.start(q), tl.position(q, ts[3]), k=4)
    assert got.tolist() == [[7, 6, 5, -1]]


def test_upload_times_spanning_three_years_no_longer_fail() -> None:
    """The catalogue case of issue 13: ``videos.upload_ts`` over more than 2^36 ms."""
    uploads = np.array([0, 3 * YEAR_MS + 5]) + 1_500_000_000_000
    tl = Timeline(np.array([1, 1]), uploads, what="videos.upload_ts")
    counts = tl.count_between(tl.start(np.array([1, 1])), tl.position(np.array([1, 1]), uploads))
    assert counts.tolist() == [0.0, 1.0]
