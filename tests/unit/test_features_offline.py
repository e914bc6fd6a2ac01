"""Offline features: point-in-time correctness against brute force, labels, snapshots.

The log is small and hand-built (random but seeded), with deliberate timestamp ties, so a
brute-force Python count over "events with ts < t" is cheap and any leak of an event at or
after t into an example's features shows up as a mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from vidrec.config import FeatureConfig
from vidrec.errors import InputError
from vidrec.features.codec import unpack_many
from vidrec.features.context import context_vectors
from vidrec.features.materialize import materialize
from vidrec.features.offline import build_training_tables, snapshot_users, snapshot_videos
from vidrec.features.ranker_input import assemble, ranker_input_spec, user_tower_spec
from vidrec.features.spec import SESSION_WINDOW_MS, VIDEO_SPEC, user_spec
from vidrec.features.stores import USER_ENTITY, VIDEO_ENTITY, InMemoryStore
from vidrec.schema import EVENT_SCHEMA, VIDEO_SCHEMA

torch.set_num_threads(1)

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_700_000_000_000
STATIC_DIM = 3
CFG = FeatureConfig(history_len=5, ctr_prior_impressions=10.0, long_view_ratio=0.7)


def make_tables(seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """events / videos / users for 5 users, 12 videos, 60 requests of 3 slots over 40 days."""
    rng = np.random.default_rng(seed)
    n_videos, n_users = 12, 5
    cats = [sorted({int(c) for c in rng.choice(31, size=rng.integers(1, 3))}) for _ in range(12)]
    videos = pl.DataFrame(
        {
            "video_id": np.arange(100, 100 + n_videos),
            "creator_id": np.arange(n_videos) % 4,
            "category_ids": cats,
            "primary_category": [c[0] for c in cats],
            "category_name": ["x"] * n_videos,
            "caption": ["c"] * n_videos,
            "duration_ms": rng.integers(5_000, 60_000, n_videos),
            # Half the catalogue exists at T0; the rest is uploaded during the log.
            "upload_ts": T0
            + np.concatenate([rng.integers(-5 * DAY, 0, 6), rng.integers(0, 20 * DAY, 6)]),
        },
        schema=VIDEO_SCHEMA,
    )
    users = pl.DataFrame(
        {
            "user_id": np.arange(n_users) * 7,
            "region": ["north"] * n_users,
            "device": ["android", "ios", "web", "ios", "android"],
            "activity": ["high"] * n_users,
            "static": rng.random((n_users, STATIC_DIM), dtype=np.float32),
        }
    )
    rows: list[dict[str, object]] = []
    # Some requests share a timestamp, and outcomes land exactly on later requests' times.
    offsets = np.sort(rng.choice(np.arange(0, 40 * DAY, 10 * 60_000), 60))
    for r, off in enumerate(offsets):
        user = int(users["user_id"][int(rng.integers(n_users))])
        ts = int(T0 + off)
        live = videos.filter(pl.col("upload_ts") < ts)["video_id"].to_numpy()
        for pos, vid in enumerate(rng.choice(live, 3, replace=False)):
            base = {"user_id": user, "video_id": int(vid), "request_id": f"r{r}", "position": pos}
            rows.append({**base, "type": "impression", "ts": ts})
            if rng.random() < 0.5:
                dur = int(videos.filter(pl.col("video_id") == vid)["duration_ms"][0])
                watched = int(dur * rng.random() * 1.3)
                rows.append({**base, "type": "click", "ts": ts + 10 * 60_000})
                rows.append(
                    {
                        **base,
                        "type": "watch",
                        "ts": ts + 20 * 60_000,
                        "watch_ms": watched,
                        "video_duration_ms": dur if rng.random() < 0.8 else 0,
                    }
                )
                if rng.random() < 0.4:
                    rows.append({**base, "type": "like", "ts": ts + 20 * 60_000})
    events = events_frame(rows)
    return events, videos, users


def events_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    defaults = {
        "watch_ms": 0,
        "video_duration_ms": 0,
        "surface": "home",
        "device": None,
        "region": None,
        "position": -1,
        "request_id": None,
    }
    full = [{**defaults, **r, "event_id": f"e{i}"} for i, r in enumerate(rows)]
    return pl.DataFrame(full, schema=EVENT_SCHEMA).select(list(EVENT_SCHEMA))


@pytest.fixture(scope="module")
def tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return make_tables()


def x_field(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, ranker_input_spec(STATIC_DIM).slice(name)]


def _before(events: pl.DataFrame, kind: str, t: int, **match: int) -> pl.DataFrame:
    cond = (pl.col("type") == kind) & (pl.col("ts") < t)
    for col, value in match.items():
        cond &= pl.col(col) == value
    return events.filter(cond)


def test_every_example_matches_brute_force(tables: tuple[pl.DataFrame, ...]) -> None:
    events, videos, users = tables
    ranker = build_training_tables(events, videos, users, CFG).ranker
    assert ranker.height == events.filter(pl.col("type") == "impression").height
    x = ranker["x"].to_numpy()
    creator_of = dict(zip(videos["video_id"], videos["creator_id"], strict=True))
    creator_videos = videos.group_by("creator_id").agg("upload_ts")
    uploads = dict(zip(creator_videos["creator_id"], creator_videos["upload_ts"], strict=True))
    for i, row in enumerate(ranker.iter_rows(named=True)):
        t, u, v = row["ts"], row["user_id"], row["video_id"]
        u_watch = _before(events, "watch", t, user_id=u)
        expect = {
            "user.watches_total": u_watch.height,
            "user.watches_1d": u_watch.filter(pl.col("ts") >= t - DAY).height,
            "user.watches_7d": u_watch.filter(pl.col("ts") >= t - 7 * DAY).height,
            "user.watches_30d": u_watch.filter(pl.col("ts") >= t - 30 * DAY).height,
            "video.views_1h": _before(events, "watch", t, video_id=v)
            .filter(pl.col("ts") >= t - HOUR)
            .height,
            "video.views_1d": _before(events, "watch", t, video_id=v)
            .filter(pl.col("ts") >= t - DAY)
            .height,
            "video.impressions": _before(events, "impression", t, video_id=v).height,
            "video.creator_video_count": sum(1 for up in uploads[creator_of[v]] if up < t),
        }
        for name, count in expect.items():
            assert x_field(x[i : i + 1], name)[0, 0] == pytest.approx(math.log1p(count)), name
        clicks = _before(events, "click", t, video_id=v).height
        impressions = _before(events, "impression", t, video_id=v).height
        ctr = (clicks + 10.0 * 0.1) / (impressions + 10.0)
        assert x_field(x[i : i + 1], "video.smoothed_ctr")[0, 0] == pytest.approx(ctr)
        u_clicks = _before(events, "click", t, user_id=u).height
        u_imps = _before(events, "impression", t, user_id=u).height
        expected_rate = u_clicks / max(u_imps, 1)
        assert x_field(x[i : i + 1], "user.click_rate")[0, 0] == pytest.approx(expected_rate)
        recent = _before(events, "impression", t, user_id=u).filter(
            pl.col("ts") >= t - SESSION_WINDOW_MS
        )
        depth = x_field(x[i : i + 1], "context.session_depth")[0, 0]
        assert depth == pytest.approx(math.log1p(recent.height))


def test_labels_come_from_the_same_impression(tables: tuple[pl.DataFrame, ...]) -> None:
    events, videos, users = tables
    ranker = build_training_tables(events, videos, users, CFG).ranker
    duration = dict(zip(videos["video_id"], videos["duration_ms"], strict=True))
    for row in ranker.iter_rows(named=True):
        same = events.filter(
            (pl.col("request_id") == row["request_id"]) & (pl.col("video_id") == row["video_id"])
        )
        types = set(same["type"])
        assert row["click"] == int("click" in types)
        assert row["like"] == int("like" in types)
        watch = same.filter(pl.col("type") == "watch")
        if watch.height:
            w = watch.row(0, named=True)
            dur = w["video_duration_ms"] or duration[row["video_id"]]
            assert row["watch_ms"] == w["watch_ms"]
            assert row["long_view"] == int(w["watch_ms"] / dur >= CFG.long_view_ratio)
        else:
            assert row["watch_ms"] == 0 and row["long_view"] == 0
    assert ranker["click"].sum() > 0 and ranker["long_view"].sum() > 0


def test_retrieval_rows_history_is_watches_strictly_before(
    tables: tuple[pl.DataFrame, ...],
) -> None:
    events, videos, users = tables
    retrieval = build_training_tables(events, videos, users, CFG).retrieval
    assert retrieval.height == events.filter(pl.col("type") == "click").height
    assert retrieval.schema["history"] == pl.Array(pl.Int64, CFG.history_len)
    assert retrieval.schema["user_x"] == pl.Array(pl.Float32, user_tower_spec(STATIC_DIM).dim)
    for row in retrieval.iter_rows(named=True):
        past = _before(events, "watch", row["ts"], user_id=row["user_id"])["video_id"].to_list()
        expected = (past[::-1] + [-1] * CFG.history_len)[: CFG.history_len]
        assert list(row["history"]) == expected
    first_day = events["ts"].min() // DAY * DAY  # type: ignore[operator]
    assert (retrieval["day"] == (retrieval["ts"] - first_day) // DAY).all()


def _x_of(events: pl.DataFrame, videos: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    ranker = build_training_tables(events, videos, users, CFG).ranker
    return ranker.select("request_id", "video_id", "x")


def test_events_at_or_after_ts_do_not_change_an_example(tables: tuple[pl.DataFrame, ...]) -> None:
    events, videos, users = tables
    base = _x_of(events, videos, users)
    imp = events.filter(pl.col("type") == "impression").row(40, named=True)
    t, u, v = imp["ts"], imp["user_id"], imp["video_id"]

    def with_events(*stamps: int) -> pl.DataFrame:
        rows = []
        for k, ts in enumerate(stamps):
            common = {"user_id": u, "video_id": v, "request_id": f"extra{k}", "ts": ts}
            rows += [
                {**common, "type": "impression", "position": 0},
                {**common, "type": "click"},
                {**common, "type": "watch", "watch_ms": 9_000, "video_duration_ms": 10_000},
                {**common, "type": "like"},
            ]
        extra = events_frame(rows).with_columns(pl.lit("x").alias("event_id"))
        return _x_of(pl.concat([events, extra]), videos, users)

    def x_at(table: pl.DataFrame) -> np.ndarray:
        row = table.filter((pl.col("request_id") == imp["request_id"]) & (pl.col("video_id") == v))
        return row["x"].to_numpy()[0]

    np.testing.assert_array_equal(x_at(with_events(t, t + 1, t + 5 * DAY)), x_at(base))
    changed = x_at(with_events(t - 1))
    assert not np.array_equal(changed, x_at(base))
    for name in ("user.watches_total", "video.impressions", "video.views_1h"):
        assert x_field(changed[None], name)[0, 0] > x_field(x_at(base)[None], name)[0, 0], name


def test_snapshot_equals_the_training_path(tables: tuple[pl.DataFrame, ...]) -> None:
    events, videos, users = tables
    ranker = build_training_tables(events, videos, users, CFG).ranker
    store = InMemoryStore(n_buckets=4)
    device_of = dict(zip(users["user_id"], users["device"], strict=True))
    for i in (5, 70, ranker.height - 1):
        row = ranker.row(i, named=True)
        at = row["ts"]
        user_snap = snapshot_users(events, videos, users, at, CFG)
        video_snap = snapshot_videos(events, videos, at, CFG)
        uploaded = videos.filter(pl.col("upload_ts") < at)["video_id"]
        assert sorted(video_snap["video_id"]) == sorted(uploaded)
        uspec = user_spec(STATIC_DIM)
        materialize(user_snap.drop("history"), uspec, store, USER_ENTITY, at, 2, progress=False)
        materialize(video_snap, VIDEO_SPEC, store, VIDEO_ENTITY, at, 5, progress=False)
        u_vec, u_at, _ = unpack_many(uspec, store.get_many(USER_ENTITY, [row["user_id"]]))
        v_vec, _, present = unpack_many(VIDEO_SPEC, store.get_many(VIDEO_ENTITY, [row["video_id"]]))
        assert present.all() and u_at[0] == at
        depth = (
            _before(events, "impression", at, user_id=row["user_id"])
            .filter(pl.col("ts") >= at - SESSION_WINDOW_MS)
            .height
        )
        ctx = context_vectors(at, [device_of[row["user_id"]]], depth)
        served = assemble(u_vec, v_vec, ctx, at)[0]
        np.testing.assert_array_equal(served, np.asarray(row["x"]))
        history = user_snap.filter(pl.col("user_id") == row["user_id"])["history"].to_list()[0]
        past = _before(events, "watch", at, user_id=row["user_id"])["video_id"].to_list()
        assert list(history) == (past[::-1] + [-1] * CFG.history_len)[: CFG.history_len]


def test_vectors_are_finite_and_affinity_is_a_distribution(
    tables: tuple[pl.DataFrame, ...],
) -> None:
    events, videos, users = tables
    snap = snapshot_users(events, videos, users, int(events["ts"].to_numpy().max()) + 1, CFG)
    vectors = snap["vector"].to_numpy()
    assert np.isfinite(vectors).all()
    affinity = vectors[:, user_spec(STATIC_DIM).slice("category_affinity")]
    watched = vectors[:, user_spec(STATIC_DIM).slice("watches_total")][:, 0] > 0
    np.testing.assert_allclose(affinity[watched].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        vectors[:, user_spec(STATIC_DIM).slice("static")], users["static"].to_numpy()
    )


def test_bad_input_names_table_and_column(tables: tuple[pl.DataFrame, ...]) -> None:
    events, videos, users = tables
    with pytest.raises(InputError, match="events: missing column 'ts'"):
        build_training_tables(events.drop("ts"), videos, users, CFG)
    with pytest.raises(InputError, match="users: missing column 'static'"):
        build_training_tables(events, videos, users.drop("static"), CFG)
    unknown = events.with_columns(pl.lit(999, pl.Int64).alias("video_id"))
    with pytest.raises(InputError, match=r"column 'video_id'.*999"):
        build_training_tables(unknown, videos, users, CFG)
    bad_cats = videos.with_columns(pl.lit([40]).cast(pl.List(pl.Int64)).alias("category_ids"))
    with pytest.raises(InputError, match="category_ids"):
        build_training_tables(events, bad_cats, users, CFG)
