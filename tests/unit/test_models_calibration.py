"""Calibration: Platt recovers a planted miscalibration; ECE and reliability by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vidrec.models.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
    log_loss,
    reliability,
    sigmoid,
)


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True probability sigmoid(0.5·z - 1); the model reports z (overconfident, biased)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=n)
    y = (rng.random(n) < sigmoid(0.5 * z - 1.0)).astype(np.float64)
    return z, y


def test_platt_recovers_planted_parameters() -> None:
    z, y = _miscalibrated(40_000, 0)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(0.5, abs=0.03)
    assert b == pytest.approx(-1.0, abs=0.05)


def test_platt_lowers_log_loss_and_ece_on_held_out_data() -> None:
    z_fit, y_fit = _miscalibrated(5_000, 1)
    z_eval, y_eval = _miscalibrated(5_000, 2)
    logits = np.stack([z_fit, z_fit], axis=1)
    labels = np.stack([y_fit, y_fit], axis=1)
    platt, report = calibration_report(
        logits, labels, np.stack([z_eval, z_eval], 1), np.stack([y_eval, y_eval], 1), ("a", "b")
    )
    assert platt.a.shape == (2,)
    raw, fitted = sigmoid(z_eval), platt.apply(np.stack([z_eval, z_eval], 1))[:, 0]
    assert log_loss(fitted, y_eval) < log_loss(raw, y_eval) - 0.05
    assert expected_calibration_error(fitted, y_eval) < 0.5 * expected_calibration_error(
        raw, y_eval
    )
    assert report["calibration.a.platt.ece"] < report["calibration.a.raw.ece"]
    assert report["calibration.b.isotonic.logloss"] < report["calibration.b.raw.logloss"]


def test_platt_stays_finite_on_separable_data() -> None:
    a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert np.isfinite([a, b]).all() and a > 0


def test_ece_and_reliability_by_hand() -> None:
    probs = np.array([0.05, 0.15, 0.15, 0.95])
    labels = np.array([0, 1, 0, 1])
    table = reliability(probs, labels, n_bins=10)
    assert table.count.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert table.observed_rate[1] == pytest.approx(0.5)
    expected = (1 * 0.05 + 2 * abs(0.15 - 0.5) + 1 * 0.05) / 4
    assert table.ece == pytest.approx(expected)
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)


def test_isotonic_map_is_monotone_and_bounded() -> None:
    z, y = _miscalibrated(3_000, 3)
    iso = fit_isotonic(sigmoid(z), y)
    mapped = iso.apply(np.linspace(0, 1, 101))
    assert (np.diff(mapped) >= 0).all()
    assert mapped.min() >= 0 and mapped.max() <= 1
