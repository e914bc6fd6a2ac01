"""What training and serving preparation may see of an event log: pseudonyms and tombstones.

The lake holds pseudonymous user ids (``HMAC-SHA256(salt, id)``, :mod:`vidrec.security.pseudonym`)
when ``VIDREC_EVENTS__ID_SALT`` is set. Models have no per-user parameters — a user is their
features (static KuaiRec features + behaviour from the log) — so training works in whatever id
space the log is in, as long as every user-keyed table agrees: for a pseudonymous log the users
table is keyed by the same pseudonyms (the pipeline holds the salt, which must match the one the
lake was written with: the file metadata carries its fingerprint). Upload events keep the
creator's id: it is public catalogue data (``videos.creator_id``) and is needed as is.

Forgotten users (tombstones in ``<lake>/_tombstones/``, written by the lake writer from the
erasure call's Redis tombstones) lose their events and their users-table row, so the next
training set and the next ``serve prepare`` contain nothing of them.

Serving keeps raw ids online (requests carry them), so :meth:`PrivacyView.to_raw` maps the
pseudonyms of catalogue users back when a pseudonymous artefact is materialised into Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from vidrec.errors import InputError
from vidrec.schema import EventType
from vidrec.security.forget import LakeTombstones
from vidrec.security.pseudonym import Pseudonymizer


@dataclass(frozen=True)
class PrivacyView:
    events: pl.DataFrame
    users: pl.DataFrame
    user_ids: str  # "" = raw ids, else the pseudonymisation label
    forgotten_users: int  # users whose events / row were dropped
    forgotten_events: int
    raw_of: dict[int, int]  # surrogate -> raw id of catalogue users (pseudonymous logs only)
    source_events: pl.DataFrame  # without forgotten users, in the log's own id space

    def to_raw(self, ids: Iterable[int]) -> list[int]:
        """Ids of this view's space → raw ids (identity for a raw log)."""
        if not self.user_ids:
            return [int(i) for i in ids]
        return [self.raw_of[int(i)] for i in ids]


def load_tombstones(*places: Path | None) -> set[int]:
    """Tombstone pseudonyms found under any of ``places`` (lake roots; files and missing
    paths are skipped)."""
    out: set[int] = set()
    for place in places:
        if place is not None and place.is_dir():
            out |= LakeTombstones(place).read().keys()
    return out


def view(
    events: pl.DataFrame,
    users: pl.DataFrame,
    user_ids: str,
    pseudonyms: Pseudonymizer,
    tombstones: set[int],
) -> PrivacyView:
    """``events`` and ``users`` in one id space, without forgotten users.

    A pseudonymous log is re-keyed to dense surrogate ids (the rank of each pseudonym among
    the users table's): 63-bit pseudonyms do not fit the feature timelines' id range, and the
    surrogates mean nothing outside this run. :meth:`PrivacyView.to_raw` maps them back.
    """
    if user_ids:
        if not pseudonyms.enabled:
            raise InputError(
                f"the event log's user ids are pseudonymous ({user_ids}); set"
                " VIDREC_EVENTS__ID_SALT to the lake's salt to train on it"
            )
        if pseudonyms.label() != user_ids:
            raise InputError(
                f"the event log's user ids were hashed with another salt ({user_ids}, this"
                f" configuration: {pseudonyms.label()}); set VIDREC_EVENTS__ID_SALT to the"
                " lake's salt"
            )
    upload = pl.col("type") == EventType.UPLOAD.value
    # Every row's id in the tombstones' space (the pseudonym; the id itself without a salt).
    ev_p = (
        events["user_id"].to_numpy() if user_ids else pseudonyms.users(events["user_id"].to_numpy())
    )
    events = events.with_columns(pl.Series("_p", ev_p, dtype=pl.Int64))
    users = users.with_columns(
        pl.Series("_p", pseudonyms.users(users["user_id"].to_numpy()), dtype=pl.Int64)
    )
    n_events, n_users = events.height, 0
    if tombstones:
        gone = pl.Series("gone", sorted(tombstones), dtype=pl.Int64).implode()
        dropped = events.filter(~upload & pl.col("_p").is_in(gone))
        events = events.filter(upload | ~pl.col("_p").is_in(gone))
        kept = users.filter(~pl.col("_p").is_in(gone))
        n_users = max(dropped["user_id"].n_unique(), users.height - kept.height)
        users = kept
    raw_of: dict[int, int] = {}
    source_events = events.drop("_p")
    if user_ids:
        users = users.sort("_p").with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_s"))
        raw_of = dict(zip(users["_s"].to_list(), users["user_id"].to_list(), strict=True))
        events = events.join(users.select("_p", "_s"), on="_p", how="left", maintain_order="left")
        unknown = events.filter(~upload & pl.col("_s").is_null())
        if unknown.height:
            raise InputError(
                f"events: {unknown.height} events of users not in the users table (pseudonym"
                f" {unknown['_p'][0]}); add them to the users table first"
            )
        events = events.with_columns(
            pl.when(upload).then(pl.col("user_id")).otherwise(pl.col("_s")).alias("user_id")
        ).drop("_s")
        users = users.with_columns(pl.col("_s").alias("user_id")).drop("_s")
    return PrivacyView(
        events.drop("_p"),
        users.drop("_p"),
        user_ids,
        n_users,
        n_events - events.height,
        raw_of,
        source_events,
    )
