"""How a simulated user responds to one impression (the outcome model).

- **relevance** ``s = w_affinity * z[u]·m[v] + w_quality * q[v] + w_fresh * fresh(age)
  + w_loyalty * [creator in the user's recent creators]``, with
  ``fresh(age) = 2^(-age / freshness_half_life_days)``.
- **click** with probability ``sigmoid(click_bias + s) / log2(position + 2)``: examination
  (position bias) times attractiveness.
- **watch** (every click): skip with probability ``sigmoid(skip_bias - skip_slope * s)``;
  a skip watches a log-normal ratio around ``SKIP_RATIO_MEDIAN`` (clipped to 0.01..0.25);
  otherwise ``PARTIAL_SHARE`` of views stop uniformly in 0.25..1 and the rest watch to the
  end and loop, ratio ``0.9 + Gamma(2, 0.32)``, with ``LOOP_SHARE`` of those looping 2-5
  times more. This reproduces the two modes of KuaiRec's real watch ratios (many short
  skips, many 1-2x rewatches); ``vidrec.data.compare`` measures how close.
- **like / share / comment** only after a long view (ratio >= 0.7), each with probability
  ``sigmoid(<event>_bias + s)``.
- **not_interested** for impressions not clicked, with probability
  ``not_interested_max * sigmoid(-3 (z + 0.8))``: poor category matches.

Timing: click 0.5 s + Exp(3 s) after the impression; the watch event when the view ends;
like/share/comment 1 ms + Exp(2/5/10 s) after it; not_interested 1 s + Exp(2 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vidrec.data.world import World

if TYPE_CHECKING:
    from vidrec.data.simulator import SimConfig

SKIP_RATIO_MEDIAN = 0.09
PARTIAL_SHARE = 0.06
LOOP_SHARE = 0.03
LONG_VIEW_RATIO = 0.7
DAY_MS = 86_400_000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Outcomes:
    """Per impression; watch-derived arrays are meaningful where ``click``."""

    click: np.ndarray  # bool
    click_ts: np.ndarray
    watch_ms: np.ndarray
    watch_ts: np.ndarray
    like: np.ndarray  # bool
    share: np.ndarray  # bool
    comment: np.ndarray  # bool
    like_ts: np.ndarray
    share_ts: np.ndarray
    comment_ts: np.ndarray
    not_interested: np.ndarray  # bool
    not_interested_ts: np.ndarray
    long_view: np.ndarray  # bool


def relevance(
    world: World,
    users: np.ndarray,
    videos: np.ndarray,
    ts: np.ndarray,
    memory: np.ndarray,
    cfg: SimConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """``(s, z)``: relevance and raw category affinity of each impression."""
    z = world.video_affinity(users, videos)
    age_days = (ts - world.upload_ts[videos]) / DAY_MS
    fresh = np.exp2(-np.maximum(age_days, 0.0) / cfg.freshness_half_life_days)
    loyal = (memory[users] == world.creator_index[videos][:, None]).any(axis=1)
    s = (
        cfg.w_affinity * z
        + cfg.w_quality * world.quality[videos]
        + cfg.w_fresh * fresh
        + cfg.w_loyalty * loyal
    )
    return s, z


def _watch_ratio(s: np.ndarray, cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    n = len(s)
    skip = rng.random(n) < _sigmoid(cfg.skip_bias - cfg.skip_slope * s)
    partial = rng.random(n) < PARTIAL_SHARE
    skip_ratio = np.clip(np.exp(np.log(SKIP_RATIO_MEDIAN) + 0.45 * rng.normal(size=n)), 0.01, 0.25)
    full = 0.9 + rng.gamma(2.0, 0.32, n)
    full *= np.where(rng.random(n) < LOOP_SHARE, rng.uniform(2.0, 5.0, n), 1.0)
    rest = np.where(partial, rng.uniform(0.25, 1.0, n), full)
    return np.where(skip, skip_ratio, rest)


def respond(
    world: World,
    users: np.ndarray,
    videos: np.ndarray,
    positions: np.ndarray,
    ts: np.ndarray,
    memory: np.ndarray,
    cfg: SimConfig,
    rng: np.random.Generator,
) -> Outcomes:
    """Outcomes of aligned impressions (see module docstring)."""
    n = len(users)
    s, z = relevance(world, users, videos, ts, memory, cfg)
    examine = 1.0 / np.log2(positions + 2.0)
    click = rng.random(n) < examine * _sigmoid(cfg.click_bias + s)
    click_ts = ts + 500 + rng.exponential(3_000, n).astype(np.int64)
    ratio = _watch_ratio(s, cfg, rng)
    watch_ms = np.maximum(np.round(ratio * world.duration_ms[videos]).astype(np.int64), 1)
    watch_ts = click_ts + watch_ms
    long_view = click & (ratio >= LONG_VIEW_RATIO)

    def engaged(bias: float) -> np.ndarray:
        return long_view & (rng.random(n) < _sigmoid(bias + s))

    def after_watch(mean_ms: float) -> np.ndarray:
        return watch_ts + 1 + rng.exponential(mean_ms, n).astype(np.int64)

    poor_match = cfg.not_interested_max * _sigmoid(-3.0 * (z + 0.8))
    return Outcomes(
        click=click,
        click_ts=click_ts,
        watch_ms=watch_ms,
        watch_ts=watch_ts,
        like=engaged(cfg.like_bias),
        share=engaged(cfg.share_bias),
        comment=engaged(cfg.comment_bias),
        like_ts=after_watch(2_000),
        share_ts=after_watch(5_000),
        comment_ts=after_watch(10_000),
        not_interested=~click & (rng.random(n) < poor_match),
        not_interested_ts=ts + 1_000 + rng.exponential(2_000, n).astype(np.int64),
        long_view=long_view,
    )
