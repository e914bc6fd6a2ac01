"""The previous recommender whose slates the log records (the *logging policy*).

Each slot of a slate comes from one source, drawn with probabilities ``SimConfig.policy_mix``:

- ``popular``: a live video with probability proportional to its popularity;
- ``affinity``: a category drawn from ``softmax(preference_temperature * z[u])``, then a
  live video of that (primary) category proportional to popularity;
- ``fresh``: a uniform video uploaded within the last ``fresh_window_days``;
- ``creator``: a uniform live video of a creator the user recently watched
  (``creator_memory`` most recent per user);
- ``random``: a uniform live video (exploration).

A source with nothing to offer (no fresh uploads, empty memory, the creator's video not yet
live) falls back to ``popular``. Duplicates within a slate are redrawn uniformly. The slate
is then ordered by the policy's own noisy score ``0.5 z + 0.3 q + Gumbel`` - so, as in
real logs, position is correlated with relevance and the examination bias must be learned.
Only videos with ``upload_ts <= chunk start`` are live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vidrec.data.world import World
from vidrec.schema import N_CATEGORIES

if TYPE_CHECKING:
    from vidrec.data.simulator import SimConfig

SOURCES: tuple[str, ...] = ("popular", "affinity", "fresh", "creator", "random")
MAX_DEDUPE_ROUNDS = 50


@dataclass(frozen=True)
class LiveCatalog:
    """Sampling structures over the videos live at one instant."""

    now_ms: int
    live: np.ndarray  # int64 indices of live videos
    popular_cdf: np.ndarray  # cumulative popularity over all videos (0 weight if not live)
    by_category: np.ndarray  # video indices ordered by primary category
    category_cdf: np.ndarray  # cumulative popularity in by_category order
    category_bounds: np.ndarray  # int64[N_CATEGORIES + 1] into by_category
    fresh: np.ndarray  # video indices uploaded within the fresh window


def live_catalog(world: World, now_ms: int, fresh_window_ms: int) -> LiveCatalog:
    is_live = world.upload_ts <= now_ms
    weight = np.where(is_live, world.popularity, 0.0)
    by_category = np.argsort(world.primary_category, kind="stable")
    bounds = np.searchsorted(world.primary_category[by_category], np.arange(N_CATEGORIES + 1))
    fresh = np.flatnonzero(is_live & (world.upload_ts > now_ms - fresh_window_ms))
    return LiveCatalog(
        now_ms=now_ms,
        live=np.flatnonzero(is_live),
        popular_cdf=np.cumsum(weight),
        by_category=by_category,
        category_cdf=np.cumsum(weight[by_category]),
        category_bounds=bounds,
        fresh=fresh,
    )


def _sample_popular(cat: LiveCatalog, n: int, rng: np.random.Generator) -> np.ndarray:
    r = rng.random(n) * cat.popular_cdf[-1]
    return np.searchsorted(cat.popular_cdf, r, side="right").clip(max=len(cat.popular_cdf) - 1)


def _sample_categories(prefs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(prefs, axis=1)
    r = rng.random(len(prefs))[:, None] * cdf[:, -1:]
    return (cdf <= r).sum(axis=1).clip(max=N_CATEGORIES - 1)


def _sample_affinity(
    world: World,
    cat: LiveCatalog,
    users: np.ndarray,
    temperature: float,
    rng: np.random.Generator,
) -> np.ndarray:
    logits = temperature * world.affinity[users].astype(np.float64)
    prefs = np.exp(logits - logits.max(axis=1, keepdims=True))
    category = _sample_categories(prefs, rng)
    start, end = cat.category_bounds[category], cat.category_bounds[category + 1]
    cdf = np.concatenate([[0.0], cat.category_cdf])
    lo, hi = cdf[start], cdf[end]
    pos = np.searchsorted(cat.category_cdf, lo + rng.random(len(users)) * (hi - lo), side="right")
    picked = cat.by_category[pos.clip(max=len(cat.by_category) - 1)]
    empty = hi <= lo
    picked[empty] = _sample_popular(cat, int(empty.sum()), rng)
    return picked


def _sample_creator(
    world: World,
    cat: LiveCatalog,
    users: np.ndarray,
    memory: np.ndarray,
    by_creator: np.ndarray,
    creator_bounds: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    slot = rng.integers(0, memory.shape[1], len(users))
    creator = memory[users, slot]
    known = creator >= 0
    c = np.where(known, creator, 0)
    start, end = creator_bounds[c], creator_bounds[c + 1]
    picked = by_creator[start + (rng.random(len(users)) * (end - start)).astype(np.int64)]
    ok = known & (world.upload_ts[picked] <= cat.now_ms)
    picked[~ok] = _sample_popular(cat, int((~ok).sum()), rng)
    return picked


def _uniform(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return pool[rng.integers(0, len(pool), n)]


@dataclass(frozen=True)
class CreatorIndex:
    by_creator: np.ndarray  # video indices ordered by creator index
    bounds: np.ndarray  # int64[C + 1]

    @classmethod
    def of(cls, world: World) -> CreatorIndex:
        order = np.argsort(world.creator_index, kind="stable")
        bounds = np.searchsorted(world.creator_index[order], np.arange(world.n_creators + 1))
        return cls(order, bounds)


def _dedupe(slates: np.ndarray, cat: LiveCatalog, rng: np.random.Generator) -> None:
    """Redraw repeated videos within a slate (in place) so (request, video) is a key."""
    if slates.shape[1] > len(cat.live):
        raise ValueError(f"slate size {slates.shape[1]} exceeds the {len(cat.live)} live videos")
    for _ in range(MAX_DEDUPE_ROUNDS):
        order = np.argsort(slates, axis=1, kind="stable")
        ordered = np.take_along_axis(slates, order, axis=1)
        repeated = np.zeros_like(slates, dtype=bool)
        np.put_along_axis(repeated, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1)
        if not repeated.any():
            return
        slates[repeated] = _uniform(cat.live, int(repeated.sum()), rng)
    raise RuntimeError("could not de-duplicate slates; is the live catalogue tiny?")


def choose_slates(
    world: World,
    cat: LiveCatalog,
    creators: CreatorIndex,
    users: np.ndarray,
    memory: np.ndarray,
    cfg: SimConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """``int64[len(users), cfg.slate_size]`` video indices, position order (see module)."""
    n, slate_size = len(users), cfg.slate_size
    source = rng.choice(len(SOURCES), size=(n, slate_size), p=np.asarray(cfg.policy_mix))
    slot_users = np.repeat(users, slate_size).reshape(n, slate_size)
    slates = np.empty((n, slate_size), dtype=np.int64)
    for k, name in enumerate(SOURCES):
        mask = source == k
        m = int(mask.sum())
        if name == "popular":
            slates[mask] = _sample_popular(cat, m, rng)
        elif name == "affinity":
            slates[mask] = _sample_affinity(
                world, cat, slot_users[mask], cfg.preference_temperature, rng
            )
        elif name == "fresh":
            pool = cat.fresh if len(cat.fresh) else cat.live
            slates[mask] = _uniform(pool, m, rng)
        elif name == "creator":
            slates[mask] = _sample_creator(
                world, cat, slot_users[mask], memory, creators.by_creator, creators.bounds, rng
            )
        else:
            slates[mask] = _uniform(cat.live, m, rng)
    _dedupe(slates, cat, rng)
    score = (
        0.5 * world.video_affinity(slot_users.ravel(), slates.ravel()).reshape(n, slate_size)
        + 0.3 * world.quality[slates]
        + rng.gumbel(size=(n, slate_size))
    )
    return np.take_along_axis(slates, np.argsort(-score, axis=1, kind="stable"), axis=1)
