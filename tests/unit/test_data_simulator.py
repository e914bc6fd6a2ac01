import dataclasses

import numpy as np
import polars as pl
import pytest

from tests.unit.data_fixtures import SMALL, click_labels, real_catalog, small_events
from vidrec.data.simulator import SimConfig, benchmark_simulator, schedule_uploads, simulate
from vidrec.data.world import build_world
from vidrec.schema import EVENT_SCHEMA, EngagementEvent, EventType

OUTCOMES = ("click", "watch", "like", "share", "comment", "not_interested")


def test_schema_is_exactly_event_schema_and_sorted_by_ts() -> None:
    events = small_events()
    assert dict(events.schema) == EVENT_SCHEMA
    assert events["ts"].is_sorted()
    assert events["event_id"].n_unique() == len(events)
    assert set(events["type"].unique()) <= {t.value for t in EventType}
    assert set(events["type"].unique()) >= {"impression", *OUTCOMES, "upload"}
    assert 150_000 < len(events) < 600_000  # the brief's "small config" size
    for row in events.sample(200, seed=0).iter_rows(named=True):
        EngagementEvent.model_validate(row)  # every row is a valid API event


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    cfg = dataclasses.replace(SMALL, n_users=300, days=3)
    first = simulate(real_catalog(), cfg)
    assert first.equals(simulate(real_catalog(), cfg))
    other = simulate(real_catalog(), dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert not other.drop("event_id", "request_id").equals(
        first.drop("event_id", "request_id").head(len(other))
    )
    assert set(first["user_id"].unique()) != set(other["user_id"].unique())


def test_outcomes_follow_their_own_impression() -> None:
    events = small_events()
    shown = events.filter(pl.col("type") == "impression").select(
        "request_id", "video_id", pl.col("ts").alias("shown_ts"), pl.col("position").alias("pos")
    )
    assert shown.select("request_id", "video_id").is_unique().all()
    outcomes = events.filter(pl.col("type").is_in(OUTCOMES))
    joined = outcomes.join(shown, on=["request_id", "video_id"], how="left")
    assert joined["shown_ts"].null_count() == 0
    assert (joined["ts"] > joined["shown_ts"]).all()
    assert (joined["position"] == joined["pos"]).all()


def test_watch_only_after_click_and_engagement_only_after_watch() -> None:
    events = small_events()
    keyed = {
        kind: events.filter(pl.col("type") == kind).select("request_id", "video_id", "ts")
        for kind in ("click", "watch", "like", "share", "comment")
    }
    watch = keyed["watch"].join(keyed["click"], on=["request_id", "video_id"], suffix="_c")
    assert len(watch) == len(keyed["watch"]) and (watch["ts"] > watch["ts_c"]).all()
    for kind in ("like", "share", "comment"):
        after = keyed[kind].join(keyed["watch"], on=["request_id", "video_id"], suffix="_w")
        assert len(after) == len(keyed[kind]) and (after["ts"] > after["ts_w"]).all()
    watches = events.filter(pl.col("type") == "watch")
    assert (watches["watch_ms"] > 0).all() and (watches["video_duration_ms"] > 0).all()


def test_positions_lie_within_the_slate() -> None:
    events = small_events()
    shown = events.filter(pl.col("type") == "impression")
    per_request = shown.group_by("request_id").agg(
        pl.len().alias("n"), pl.col("position").sort().alias("positions")
    )
    assert (per_request["n"] == SMALL.slate_size).all()
    assert per_request["positions"].to_list()[0] == list(range(SMALL.slate_size))
    assert (events.filter(pl.col("type") == "upload")["position"] == -1).all()


def test_videos_are_shown_only_after_upload() -> None:
    events = small_events()
    scheduled = schedule_uploads(real_catalog(), SMALL).videos.select("video_id", "upload_ts")
    shown = events.filter(pl.col("type") == "impression").join(scheduled, on="video_id")
    assert (shown["ts"] >= shown["upload_ts"]).all()
    uploads = events.filter(pl.col("type") == "upload").join(scheduled, on="video_id")
    assert (uploads["ts"] == uploads["upload_ts"]).all()
    creators = real_catalog().videos.select("video_id", pl.col("creator_id").alias("creator"))
    assert (
        (uploads.join(creators, on="video_id").select(pl.col("user_id") == pl.col("creator")))
        .to_series()
        .all()
    )
    window = int((1 - SMALL.live_fraction) * len(scheduled))
    assert 0.8 * window < len(uploads) < 1.2 * window
    first_shown = shown.group_by("video_id").agg(pl.col("ts").min())
    fresh = first_shown.join(uploads.select("video_id"), on="video_id")
    assert len(fresh) > 0.5 * len(uploads)  # new uploads do get shown


def test_schedule_uploads_is_idempotent() -> None:
    once = schedule_uploads(real_catalog(), SMALL)
    assert schedule_uploads(once, SMALL).videos.equals(once.videos)


def test_position_bias_is_visible() -> None:
    ctr = click_labels(small_events()).group_by("position").agg(pl.col("clicked").mean())
    by_position = dict(ctr.iter_rows())
    assert by_position[0] > 3 * by_position[9]
    assert by_position[2] > by_position[5] > by_position[8]


def test_users_click_more_in_their_top_categories() -> None:
    world = build_world(real_catalog(), SMALL)
    top3 = np.argsort(-world.affinity, axis=1)[:, :3]
    user_row = {u: i for i, u in enumerate(world.user_ids)}
    labels = click_labels(small_events()).join(
        real_catalog().videos.select("video_id", "primary_category"), on="video_id"
    )
    rows = np.array([user_row[u] for u in labels["user_id"].to_list()])
    in_top = (top3[rows] == labels["primary_category"].to_numpy()[:, None]).any(axis=1)
    clicked = labels["clicked"].to_numpy()
    assert clicked[in_top].mean() > 2 * clicked[~in_top].mean()


def test_affinity_is_predictable_from_real_user_features() -> None:
    world = build_world(real_catalog(), dataclasses.replace(SMALL, n_users=None))
    static = real_catalog().users.sort("user_id")["static"].to_numpy()
    fit, *_ = np.linalg.lstsq(static, world.affinity, rcond=None)
    explained = 1 - ((static @ fit - world.affinity) ** 2).mean() / world.affinity.var()
    assert explained > 0.4


def test_watch_ratio_has_skips_and_rewatches() -> None:
    watches = small_events().filter(pl.col("type") == "watch")
    ratio = (watches["watch_ms"] / watches["video_duration_ms"]).to_numpy()
    assert 0.25 < (ratio < 0.25).mean() < 0.6
    assert 0.25 < ((ratio >= 1.0) & (ratio <= 2.0)).mean() < 0.7


def test_not_interested_goes_to_poor_matches() -> None:
    world = build_world(real_catalog(), SMALL)
    events = small_events()
    user_row = {u: i for i, u in enumerate(world.user_ids)}

    def mean_affinity(kind: str) -> float:
        rows = events.filter(pl.col("type") == kind)
        users = np.array([user_row[u] for u in rows["user_id"].to_list()])
        return float(world.video_affinity(users, rows["video_id"].to_numpy()).mean())

    assert mean_affinity("not_interested") < mean_affinity("impression") - 0.5


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="policy_mix"):
        SimConfig(policy_mix=(0.5, 0.5))
    with pytest.raises(ValueError, match="live_fraction"):
        SimConfig(live_fraction=1.5)


def test_n_users_picks_a_subset_of_real_users() -> None:
    feed = small_events().filter(pl.col("type") != "upload")
    users = set(feed["user_id"].unique())
    assert 1_500 < len(users) <= SMALL.n_users  # type: ignore[operator]
    assert users <= set(real_catalog().users["user_id"])
    regions = real_catalog().users.select("user_id", pl.col("region").alias("home"))
    joined = feed.sample(1_000, seed=1).join(regions, on="user_id")
    assert (joined["region"] == joined["home"]).all()


def test_benchmark_sizes_the_run_to_the_requested_events() -> None:
    result = benchmark_simulator(150_000, real_catalog(), progress=False)
    assert 75_000 < result.n_events < 300_000
    assert result.events_per_second > 0
