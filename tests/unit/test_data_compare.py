from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.unit.data_fixtures import real_catalog, small_events
from vidrec.data.compare import MAX_RATIO, compare_watch_ratio, plot_watch_ratio


def _watch_events(ratios: np.ndarray, duration_ms: int = 10_000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "type": ["watch"] * len(ratios),
            "watch_ms": np.round(ratios * duration_ms).astype(np.int64),
            "video_duration_ms": np.full(len(ratios), duration_ms),
        }
    )


def test_simulated_watch_ratios_resemble_kuairec() -> None:
    real = real_catalog().interactions
    result = compare_watch_ratio(small_events(), real)
    assert result.n_real == 1_000 and result.n_sim > 10_000
    assert 0.0 <= result.ks_statistic < 0.15
    assert 0.0 <= result.wasserstein < 0.3
    assert list(result.real_quantiles) == sorted(result.real_quantiles)
    expected_real = np.quantile(np.clip(real["watch_ratio"].to_numpy(), 0, MAX_RATIO), 0.5)
    assert result.real_quantiles[result.quantiles.index(0.5)] == pytest.approx(expected_real)


def test_statistics_separate_different_distributions() -> None:
    real = real_catalog().interactions
    same = compare_watch_ratio(_watch_events(real["watch_ratio"].to_numpy()), real)
    assert same.ks_statistic < 0.01 and same.wasserstein < 0.01
    shifted = compare_watch_ratio(_watch_events(np.full(500, 3.0)), real)
    assert shifted.ks_statistic > 0.9 and shifted.wasserstein > 1.5


def test_plot_is_written(tmp_path: Path) -> None:
    events, real = small_events(), real_catalog().interactions
    comparison = compare_watch_ratio(events, real)
    path = plot_watch_ratio(comparison, events, real, tmp_path / "report" / "watch_ratio.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_no_watches_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 'watch' event"):
        compare_watch_ratio(_watch_events(np.array([])), real_catalog().interactions)
