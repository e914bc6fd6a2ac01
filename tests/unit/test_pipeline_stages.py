"""Filters and mixers on small inputs; the creator-run rule on random inputs."""

from __future__ import annotations

import asyncio
from itertools import groupby

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.pipeline.base import Candidate, RequestContext, UserContext
from vidrec.pipeline.candidates import Candidates
from vidrec.pipeline.filters.blocked_creators import BlockedCreators
from vidrec.pipeline.filters.not_interested import NotInterested
from vidrec.pipeline.filters.seen import Seen
from vidrec.pipeline.mixers.category_spread import CategorySpread
from vidrec.pipeline.mixers.creator_run import CreatorRun
from vidrec.pipeline.mixers.explain import Explain
from vidrec.pipeline.mixers.exploration import ExplorationSlots, slot_positions
from vidrec.pipeline.mixers.freshness import FreshnessBoost
from vidrec.pipeline.scorers.retrieval_order import retrieval_order_scores

NOW = 1_760_000_000_000
H = 3_600_000


def ctx(count: int = 10, **user: object) -> RequestContext:
    c = RequestContext("r1", "home", "stable", NOW, count, user_id=7, region="north")
    fields: dict[str, object] = dict(
        user_id=7, known=True, vector=None, region="north", device="ios"
    )
    fields.update(user)
    c.user = UserContext(**fields)  # type: ignore[arg-type]
    return c


def cand(vid: int, creator: int = -1, score: float = 0.0, **kw: object) -> Candidate:
    return Candidate(
        video_id=vid,
        source=str(kw.pop("source", "two_tower")),
        retrieval_score=score,
        creator_id=creator,
        score=score,
        **kw,  # type: ignore[arg-type]
    )


def run(coro):  # type: ignore[no-untyped-def]
    """A stage's answer; a frame comes back as the candidate objects it holds."""
    out = asyncio.run(coro)
    return out.to_list() if isinstance(out, Candidates) else out


def frame(cands: list[Candidate]) -> Candidates:
    return Candidates.from_list(cands)


def max_run(cands: list[Candidate]) -> int:
    return max((len(list(g)) for k, g in groupby(c.creator_id for c in cands) if k >= 0), default=0)


def test_seen_drops_seen_and_recent_watches() -> None:
    cs = [cand(i) for i in range(6)]
    res = run(Seen()(ctx(seen=frozenset({1, 2}), recent_watches=(4,)), frame(cs)))
    assert [c.video_id for c in res.kept] == [0, 3, 5]
    assert sorted(c.video_id for c in res.removed) == [1, 2, 4]


def test_not_interested_drops_videos_and_creators_and_blocked() -> None:
    cs = [cand(i, creator=i % 3) for i in range(9)]
    c = ctx(
        not_interested_videos=frozenset({0}),
        not_interested_creators=frozenset({1}),
        blocked_creators=frozenset({2}),
    )
    kept = list(run(NotInterested()(c, frame(cs))).kept)
    assert [x.video_id for x in kept] == [2, 3, 5, 6, 8]
    assert [x.video_id for x in run(BlockedCreators()(c, frame(kept))).kept] == [3, 6]


def test_filters_pass_everything_for_anonymous_requests() -> None:
    c = ctx()
    c.user = None
    cs = [cand(i, creator=1) for i in range(3)]
    for f in (Seen(), NotInterested(), BlockedCreators()):
        assert list(run(f(c, frame(cs))).kept) == cs


def test_retrieval_order_scores_are_negative_decreasing_and_unique() -> None:
    s = retrieval_order_scores(np.array([0.2, 0.9, 0.2, 0.5]), np.zeros(4, dtype=int))
    assert (s < 0).all() and (s > -1).all()
    assert len(set(s.tolist())) == 4
    assert list(np.argsort(-s, kind="stable")) == [1, 3, 0, 2]


def test_retrieval_order_interleaves_sources_whose_scales_differ() -> None:
    # source 0: cosine scores; source 1: click counts (a thousand times larger)
    scores = np.array([0.9, 0.8, 0.7, 900.0, 800.0, 700.0])
    sources = np.array([0, 0, 0, 1, 1, 1])
    order = np.argsort(-retrieval_order_scores(scores, sources), kind="stable")
    assert list(order) == [0, 3, 1, 4, 2, 5]


def test_freshness_boost_lifts_young_videos_in_both_regimes() -> None:
    young = cand(1, score=1.0, upload_ts=NOW - H)
    old = cand(2, score=1.05, upload_ts=NOW - 500 * H)
    out = run(FreshnessBoost(0.2, 24.0)(ctx(), frame([old, young])))
    assert [c.video_id for c in out] == [1, 2]
    assert out[0].score == np.float64(1.0) * (1 + 0.2 * 2 ** (-1 / 24))
    neg = [cand(3, score=-0.3, upload_ts=NOW - 500 * H), cand(4, score=-0.32, upload_ts=NOW)]
    assert [c.video_id for c in run(FreshnessBoost(0.2, 24.0)(ctx(), frame(neg)))] == [4, 3]
    unknown = cand(5, score=1.0)  # upload_ts 0: no boost
    assert run(FreshnessBoost(0.2, 24.0)(ctx(), frame([unknown])))[0].score == 1.0


def test_category_spread_caps_a_category_on_the_first_page() -> None:
    cs = [cand(i, category=0 if i < 8 else i) for i in range(12)]
    out = run(CategorySpread(max_share=0.4)(ctx(count=5), frame(cs)))
    page = out[:5]
    assert sum(c.category == 0 for c in page) == 2
    assert sorted(c.video_id for c in out) == list(range(12))  # deferred, not dropped


def test_exploration_slots_place_fresh_videos_at_fixed_positions() -> None:
    cs = [cand(i, score=10 - i, upload_ts=NOW - 400 * H) for i in range(10)]
    cs += [cand(100, source="fresh"), cand(101, upload_ts=NOW - H)]
    out = run(ExplorationSlots(0.2, 48.0)(ctx(count=10), frame(cs)))
    assert slot_positions(10, 2) == {3, 6}
    assert out[3].video_id == 100 and out[6].video_id == 101
    assert [c.video_id for c in out[:3]] == [0, 1, 2]
    assert len(out) == len(cs) and len({c.video_id for c in out}) == len(cs)


def test_explanations_follow_the_source() -> None:
    cs = [
        cand(1, anchor_video_id=55, source="item_item"),
        cand(2, source="trending", region="north"),
        cand(3, source="fresh", upload_ts=NOW - H),
        cand(4, anchor_video_id=55, source="same_creator"),
        cand(5, score=2.5, source="category", category=3, upload_ts=NOW - 400 * H),
    ]
    out = run(Explain()(ctx(recent_watches=(55,)), frame(cs)))
    assert [c.explanation for c in out] == [
        "because you watched 55",
        "trending in north",
        "new",
        "more from a creator you watch",
        "popular in category 3",
    ]


def test_creator_run_reorders_without_dropping() -> None:
    cs = [cand(i, creator=1 if i < 4 else 2) for i in range(6)]
    out = run(CreatorRun(2)(ctx(count=6), frame(cs)))
    assert [c.creator_id for c in out] == [1, 1, 2, 1, 1, 2]


@settings(max_examples=150, deadline=None)
@given(
    creators=st.lists(st.integers(-1, 4), min_size=1, max_size=40),
    count=st.integers(1, 20),
    max_run_=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_creator_run_rule_holds_on_every_list(
    creators: list[int], count: int, max_run_: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    cs = [
        cand(i, creator=c, score=float(s))
        for i, (c, s) in enumerate(zip(creators, rng.random(len(creators)), strict=True))
    ]
    out = run(CreatorRun(max_run_)(ctx(count=count), frame(cs)))[:count]
    assert max_run(out) <= max_run_
    ids = [c.video_id for c in out]
    assert len(ids) == len(set(ids))
    # dropped only if impossible: the page is short only when one creator is all that is left
    if len(out) < min(count, len(cs)):
        rest = [c for c in cs if c.video_id not in set(ids)]
        assert len({c.creator_id for c in rest}) == 1 and rest[0].creator_id == out[-1].creator_id
