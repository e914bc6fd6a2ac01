"""Pseudonymous ids, lake encryption and tombstones, down to the training set."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import polars as pl
import pytest

from tests.unit.data_fixtures import real_catalog
from vidrec.data.simulator import SimConfig, simulate
from vidrec.errors import InputError
from vidrec.events.event_log import read_event_log, read_events, write_events
from vidrec.features import build_training_tables
from vidrec.offline import privacy
from vidrec.offline.catalog import videos_as_of_log
from vidrec.security.forget import LakeTombstones
from vidrec.security.lake_crypto import LakeCrypto, LakeKeyError, is_encrypted, parse_key
from vidrec.security.pseudonym import Pseudonymizer

SALT = Pseudonymizer("pepper-for-tests")


@cache
def log() -> pl.DataFrame:
    return simulate(real_catalog(), SimConfig(seed=5, n_users=30, days=4))


def test_pseudonyms_are_keyed_stable_and_int64() -> None:
    ids = log()["user_id"].unique().to_numpy()
    hashed = SALT.users(ids)
    assert (hashed >= 0).all() and len(set(hashed.tolist())) == len(ids)
    assert SALT.user(int(ids[0])) == int(hashed[0])
    assert Pseudonymizer("another").user(int(ids[0])) != int(hashed[0])
    assert not set(hashed.tolist()) & set(ids.tolist())
    assert Pseudonymizer("").user(17) == 17 and Pseudonymizer("").label() == ""
    assert SALT.label().startswith("hmac-sha256-63:") and "pepper" not in SALT.label()


def test_parse_key_forms() -> None:
    assert parse_key("00" * 32) == bytes(32)
    assert len(parse_key("AAAAAAAAAAAAAAAAAAAAAA==")) == 16
    for bad in ("", "abc", "00" * 10):
        with pytest.raises(LakeKeyError, match="VIDREC_EVENTS__LAKE_KEY"):
            parse_key(bad)


def test_encrypted_lake_file_cannot_be_read_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIDREC_EVENTS__LAKE_KEY", raising=False)
    key = LakeCrypto(os.urandom(32))
    events = log().head(500)
    path = write_events(events, tmp_path / "lake" / "part.parquet", crypto=key)
    assert is_encrypted(path)
    marker = events["event_id"][0].encode()
    assert marker not in path.read_bytes()  # not even the footer/statistics in clear
    with pytest.raises(InputError, match=r"encrypted.*VIDREC_EVENTS__LAKE_KEY"):
        read_events(tmp_path / "lake")
    with pytest.raises(InputError, match="does not open"):
        read_events(path, LakeCrypto(os.urandom(32)))
    with pytest.raises(Exception, match=r"(?i)encrypt"):
        pl.read_parquet(path)
    back = read_event_log(tmp_path / "lake", key)
    assert back.encrypted and back.events.equals(events.sort("ts", maintain_order=True))
    # The key from the environment is the default.
    monkeypatch.setenv("VIDREC_EVENTS__LAKE_KEY", key.key.hex())
    assert read_events(path).height == 500


def test_a_directory_mixing_id_spaces_is_refused(tmp_path: Path) -> None:
    write_events(log().head(10), tmp_path / "a.parquet")
    write_events(log().head(10), tmp_path / "b.parquet", user_ids=SALT.label())
    with pytest.raises(InputError, match="disagree on the user-id space"):
        read_event_log(tmp_path)


def _pseudonymous(events: pl.DataFrame) -> pl.DataFrame:
    upload = pl.col("type") == "upload"
    hashed = pl.Series("h", SALT.users(events["user_id"].to_numpy()), dtype=pl.Int64)
    return events.with_columns(
        pl.when(upload).then(pl.col("user_id")).otherwise(hashed).alias("user_id")
    )


def test_training_from_a_pseudonymous_lake_matches_training_from_raw_ids(tmp_path: Path) -> None:
    catalog = real_catalog()
    raw = log()
    write_events(_pseudonymous(raw), tmp_path / "lake" / "p.parquet", user_ids=SALT.label())
    source = read_event_log(tmp_path / "lake")
    assert source.user_ids == SALT.label()
    with pytest.raises(InputError, match="another salt"):
        privacy.view(source.events, catalog.users, source.user_ids, Pseudonymizer("x"), set())
    with pytest.raises(InputError, match="VIDREC_EVENTS__ID_SALT"):
        privacy.view(source.events, catalog.users, source.user_ids, Pseudonymizer(""), set())
    view = privacy.view(source.events, catalog.users, source.user_ids, SALT, set())
    videos = videos_as_of_log(catalog.videos, view.events, "lake")
    hashed = build_training_tables(view.events, videos, view.users)
    plain = build_training_tables(raw, videos, catalog.users)
    # Same examples, same features: only the user-id column differs (and maps back).
    key = ["request_id", "video_id"]
    hashed_r, plain_r = hashed.ranker.sort(key), plain.ranker.sort(key)
    assert hashed_r.drop("user_id").equals(plain_r.drop("user_id"))
    assert view.to_raw(hashed_r["user_id"].to_list()) == plain_r["user_id"].to_list()


@pytest.mark.parametrize("pseudonymous", [False, True])
def test_forgotten_user_is_absent_from_the_next_training_set(
    tmp_path: Path, pseudonymous: bool
) -> None:
    catalog = real_catalog()
    raw = log()
    victim = int(raw.filter(pl.col("type") == "click")["user_id"][0])
    events = _pseudonymous(raw) if pseudonymous else raw
    label = SALT.label() if pseudonymous else ""
    lake = tmp_path / "lake"
    write_events(events, lake / "date=x" / "p.parquet", user_ids=label)
    LakeTombstones(lake).write({SALT.user(victim): 1})
    assert read_events(lake).height == raw.height  # _tombstones/ is not event data
    source = read_event_log(lake)
    view = privacy.view(
        source.events, catalog.users, source.user_ids, SALT, privacy.load_tombstones(lake)
    )
    assert view.forgotten_users == 1 and view.forgotten_events > 0
    assert victim not in view.to_raw(view.users["user_id"].to_list())
    kept = view.events.filter(pl.col("type") != "upload")["user_id"].unique()
    assert victim not in view.to_raw(kept.to_list())
    videos = videos_as_of_log(catalog.videos, view.events, "lake")
    tables = build_training_tables(view.events, videos, view.users)
    assert tables.ranker.height > 0
    assert victim not in view.to_raw(tables.ranker["user_id"].unique().to_list())
    assert victim not in view.to_raw(tables.retrieval["user_id"].unique().to_list())
    # ... while the same log without the tombstone has them.
    full = privacy.view(source.events, catalog.users, source.user_ids, SALT, set())
    viewers = full.events.filter(pl.col("type") != "upload")["user_id"].unique()
    assert victim in full.to_raw(viewers.to_list())


def test_artefact_copy_of_a_pseudonymous_log_reads_back_for_serving(tmp_path: Path) -> None:
    """What `pipeline run` writes to data/events.parquet and `serve prepare` reads back."""
    catalog = real_catalog()
    write_events(_pseudonymous(log()), tmp_path / "lake" / "p.parquet", user_ids=SALT.label())
    source = read_event_log(tmp_path / "lake")
    first = privacy.view(source.events, catalog.users, source.user_ids, SALT, set())
    copy = write_events(first.source_events, tmp_path / "events.parquet", user_ids=source.user_ids)
    again = read_event_log(copy)
    second = privacy.view(again.events, catalog.users, again.user_ids, SALT, set())
    viewers = second.events.filter(pl.col("type") != "upload")["user_id"].unique().to_list()
    raw = set(log().filter(pl.col("type") != "upload")["user_id"].unique().to_list())
    assert set(second.to_raw(viewers)) == raw
