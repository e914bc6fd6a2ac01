"""Probability calibration of ranker heads: Platt scaling (served) and isotonic (compared).

Scores are combined by weights across heads, so each head must be a probability, not just a
ranking. Platt scaling, ``sigmoid(a * logit + b)``, is two numbers per head and is baked into
the exported ranker; isotonic regression is fitted alongside to show, through the reliability
table and ECE, how much a non-parametric map would still gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

_EPS = 1e-7


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    return out


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy; probabilities are clipped away from 0 and 1."""
    p = np.clip(probs.astype(np.float64), _EPS, 1.0 - _EPS)
    y = labels.astype(np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


@dataclass(frozen=True)
class PlattParams:
    """Per-head ``a`` and ``b`` (float32 ``[H]``): calibrated = sigmoid(a * logit + b)."""

    a: np.ndarray
    b: np.ndarray

    @staticmethod
    def identity(n_heads: int) -> PlattParams:
        return PlattParams(np.ones(n_heads, np.float32), np.zeros(n_heads, np.float32))

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits * self.a + self.b)


def fit_platt(
    logits: np.ndarray, labels: np.ndarray, ridge: float = 1e-3, max_iter: int = 100
) -> tuple[float, float]:
    """Fit ``(a, b)`` by damped Newton on the log-loss; ``ridge`` keeps separable data finite."""
    z = logits.astype(np.float64)
    y = labels.astype(np.float64)
    if z.shape != y.shape or z.ndim != 1 or z.size == 0:
        raise ValueError(f"fit_platt: logits {z.shape} and labels {y.shape} must be equal, 1-D")
    theta = np.array([1.0, 0.0])

    def loss(t: np.ndarray) -> float:
        s = t[0] * z + t[1]
        return float(np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * ridge * t @ t)

    current = loss(theta)
    for _ in range(max_iter):
        p = sigmoid(theta[0] * z + theta[1])
        w = p * (1.0 - p)
        grad = np.array([np.sum((p - y) * z), np.sum(p - y)]) + ridge * theta
        hess = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        step = np.linalg.solve(hess + ridge * np.eye(2), grad)
        scale = 1.0
        while scale > 1e-6:
            candidate = theta - scale * step
            value = loss(candidate)
            if value <= current:
                break
            scale *= 0.5
        else:
            break
        improvement = current - value
        theta, current = candidate, value
        if improvement < 1e-10 * max(1.0, abs(current)):
            break
    return float(theta[0]), float(theta[1])


def fit_platt_heads(logits: np.ndarray, labels: np.ndarray) -> PlattParams:
    """One Platt fit per column of ``logits``/``labels`` (``[N, H]``)."""
    if logits.shape != labels.shape or logits.ndim != 2:
        raise ValueError(f"fit_platt_heads: shapes {logits.shape} and {labels.shape} differ")
    fits = [fit_platt(logits[:, h], labels[:, h]) for h in range(logits.shape[1])]
    return PlattParams(
        a=np.array([f[0] for f in fits], np.float32), b=np.array([f[1] for f in fits], np.float32)
    )


@dataclass(frozen=True)
class IsotonicMap:
    """A monotone piecewise-linear map from probability to calibrated probability."""

    x: np.ndarray
    y: np.ndarray

    def apply(self, probs: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.interp(probs, self.x, self.y)
        return out


def fit_isotonic(probs: np.ndarray, labels: np.ndarray) -> IsotonicMap:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(probs.astype(np.float64), labels.astype(np.float64))
    return IsotonicMap(x=np.asarray(model.X_thresholds_), y=np.asarray(model.y_thresholds_))


@dataclass(frozen=True)
class Reliability:
    """Equal-width probability bins: mean prediction vs observed rate, and bin counts."""

    bin_edges: np.ndarray  # [n_bins + 1]
    mean_prediction: np.ndarray  # [n_bins], NaN for empty bins
    observed_rate: np.ndarray  # [n_bins], NaN for empty bins
    count: np.ndarray  # int64 [n_bins]

    @property
    def ece(self) -> float:
        """Expected calibration error: count-weighted mean |prediction - observed|."""
        filled = self.count > 0
        gap = np.abs(self.mean_prediction[filled] - self.observed_rate[filled])
        return float(np.sum(gap * self.count[filled]) / max(int(self.count.sum()), 1))


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> Reliability:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, probs, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=probs, minlength=n_bins) / count
        rate = np.bincount(bins, weights=labels.astype(np.float64), minlength=n_bins) / count
    return Reliability(edges, mean_p, rate, count.astype(np.int64))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    return reliability(probs, labels, n_bins).ece


def calibration_report(
    fit_logits: np.ndarray,
    fit_labels: np.ndarray,
    eval_logits: np.ndarray,
    eval_labels: np.ndarray,
    heads: tuple[str, ...],
) -> tuple[PlattParams, dict[str, float]]:
    """Fit Platt and isotonic per head on one split, report log-loss and ECE on another.

    Keys: ``calibration.<head>.<raw|platt|isotonic>.<logloss|ece>``.
    """
    platt = fit_platt_heads(fit_logits, fit_labels)
    report: dict[str, float] = {}
    for h, head in enumerate(heads):
        raw_fit, raw_eval = sigmoid(fit_logits[:, h]), sigmoid(eval_logits[:, h])
        iso = fit_isotonic(raw_fit, fit_labels[:, h])
        variants = {
            "raw": raw_eval,
            "platt": sigmoid(platt.a[h] * eval_logits[:, h] + platt.b[h]),
            "isotonic": iso.apply(raw_eval),
        }
        for name, probs in variants.items():
            report[f"calibration.{head}.{name}.logloss"] = log_loss(probs, eval_labels[:, h])
            report[f"calibration.{head}.{name}.ece"] = expected_calibration_error(
                probs, eval_labels[:, h]
            )
    return platt, report
