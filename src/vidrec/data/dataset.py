"""Bring your own data: read a dataset directory written to the contract of docs/datasets.md.

``DIR/interactions.*`` (required), ``DIR/items.*`` (required) and ``DIR/users.*`` (optional),
each Parquet or CSV by extension, become the tables every later stage already reads: videos
(``VIDEO_SCHEMA``), users (``USERS_SCHEMA`` with the dataset's own feature width) and an event
log (``EVENT_SCHEMA``). Nothing is simulated and nothing is KuaiRec-specific.

Validation reads everything before any work starts. A file that is wrong (a missing or
mistyped column, an unknown event type, timestamps in seconds, duplicate catalogue ids) is a
``DatasetError`` naming the file, the column and how many rows. Rows a real log always has a
few of (unknown items or users, events before their item's upload, repeated rows) are skipped
and counted in :class:`DatasetReport`, up to a share set in ``config.data``; more than that is
an error too, because it means a join key or a unit is wrong, not that a few rows are bad.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.config import DataConfig
from vidrec.data.errors import DatasetError
from vidrec.data.kuairec import stable_hash
from vidrec.schema import (
    EVENT_SCHEMA,
    MAX_CREATOR_ID,
    N_CATEGORIES,
    SECONDS_BELOW,
    USER_SCHEMA,
    VIDEO_SCHEMA,
    EventType,
    check_columns,
)

INTERACTIONS = "interactions"
ITEMS = "items"
USERS = "users"
EXTENSIONS = (".parquet", ".csv")
ENGAGEMENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType if t != EventType.UPLOAD)
"""The ``event`` values a dataset may hold: every engagement type (uploads come from items)."""
SPLITS = ("train", "valid", "test")
CSV_LIST_SEPARATOR = "|"
"""A list of categories in a CSV cell: ``3|7``."""
MAX_ENTITY_ID = (1 << 27) - 1
"""Largest user/item id the feature timelines key (``features.timeline.MAX_ENTITY_ID``: the
data layer may not import features, a test holds the two equal)."""
SPLIT = "split"
"""Column of :attr:`Dataset.interactions` that carries the dataset's own split, when given."""


@dataclass
class DatasetReport:
    """What loading kept, skipped (reason → rows) and decided (one sentence each)."""

    interactions: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "interactions": self.interactions,
            "kept": self.kept,
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Dataset:
    """A contract dataset as the pipeline uses it.

    ``interactions`` is the validated contract frame (``user_id, item_id, ts, event, watch_ms,
    position, request_id, event_id`` and ``split`` when the dataset has one), sorted by ``ts``;
    ``events`` is the same rows as an event log, joined to it by ``event_id``.
    """

    videos: pl.DataFrame
    users: pl.DataFrame
    interactions: pl.DataFrame
    events: pl.DataFrame
    report: DatasetReport


def _find(root: Path, stem: str, required: bool) -> Path | None:
    found = [root / f"{stem}{ext}" for ext in EXTENSIONS if (root / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise DatasetError(f"{root}: both {found[0].name} and {found[1].name}; keep one")
    if not found and required:
        raise DatasetError(f"{root / stem}.parquet (or .csv): file not found; see docs/datasets.md")
    return found[0] if found else None


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=100_000)
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a damaged file
        raise DatasetError(f"{path}: not a readable {path.suffix[1:]} file ({exc})") from exc


def _require(df: pl.DataFrame, path: Path, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in df.columns:
            raise DatasetError(
                f"{path}: column {column!r} is missing (has: {', '.join(df.columns)})"
            )


def _integers(df: pl.DataFrame, path: Path, column: str, *, nullable: bool = False) -> pl.Series:
    """``column`` as Int64; floats only when every value is a whole number (CSV inference)."""
    s = df[column]
    nulls = s.null_count()
    if nulls and not nullable:
        raise DatasetError(f"{path}: column {column!r}: {nulls:,} of {len(s):,} rows are empty")
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype.is_float():
        bad = s.drop_nulls().filter(s.drop_nulls() != s.drop_nulls().round())
        if bad.len() == 0:
            return s.cast(pl.Int64)
        raise DatasetError(
            f"{path}: column {column!r}: {bad.len():,} rows are not whole numbers (e.g. {bad[0]})"
        )
    example = s.drop_nulls().head(1).to_list()
    raise DatasetError(
        f"{path}: column {column!r} has type {s.dtype} in all {len(s):,} rows, expected integers"
        + (f" (e.g. {example[0]!r})" if example else "")
    )


def _unique_ids(raw: pl.DataFrame, path: Path, column: str, what: str) -> pl.Series:
    """The id column of a table with one row per entity: present, integer, in range, unique."""
    _require(raw, path, [column])
    ids = _integers(raw, path, column)
    _check_ids(ids, path, column)
    repeated = ids.filter(~ids.is_first_distinct())
    if repeated.len():
        raise DatasetError(
            f"{path}: column {column!r}: {repeated.len():,} rows repeat an earlier {what} id"
            f" (e.g. {repeated[0]}); write one row per {what}"
        )
    return ids


def _check_ids(ids: pl.Series, path: Path, column: str) -> None:
    bad = ids.filter((ids < 0) | (ids > MAX_ENTITY_ID))
    if bad.len():
        raise DatasetError(
            f"{path}: column {column!r}: {bad.len():,} ids outside 0..{MAX_ENTITY_ID:,}"
            f" (e.g. {bad[0]}); re-index them densely"
        )


def _check_millis(ts: pl.Series, path: Path, column: str) -> None:
    seconds = ts.filter(ts < SECONDS_BELOW)
    if seconds.len():
        raise DatasetError(
            f"{path}: column {column!r}: {seconds.len():,} of {ts.len():,} timestamps look like"
            f" seconds (e.g. {seconds[0]}, before {SECONDS_BELOW:,}); write milliseconds since"
            " the epoch"
        )


def _skip(
    df: pl.DataFrame,
    drop: pl.Series,
    reason: str,
    message: str,
    max_share: float,
    setting: str,
    total: int,
    report: DatasetReport,
) -> pl.DataFrame:
    """Drop the rows of ``drop`` and count them, or fail when they exceed ``max_share``."""
    n = int(drop.sum())
    if n == 0:
        return df
    if n > max_share * total:
        raise DatasetError(
            f"{message}: {n:,} of {total:,} rows ({n / total:.1%}); at most {max_share:.1%}"
            f" may be skipped (data.{setting})"
        )
    report.skipped[reason] = n
    return df.filter(~drop)


# --- items ---------------------------------------------------------------------------------


def _categories(items: pl.DataFrame, path: Path, report: DatasetReport) -> pl.DataFrame:
    """``item_id, category_ids, original``: ids in 0..N_CATEGORIES-1, every value kept."""
    if "category" not in items.columns:
        report.notes.append(f"{path}: no 'category' column; every item is in category 0")
        return items.select("item_id", pl.lit([0]).cast(pl.List(pl.Int64)).alias("cats"))
    col = items["category"]
    if col.dtype == pl.String:
        cats = col.str.split(CSV_LIST_SEPARATOR).list.eval(pl.element().str.strip_chars())
        cats = cats.list.eval(pl.element().filter(pl.element() != ""))
        try:
            col = cats.cast(pl.List(pl.Int64))
        except pl.exceptions.InvalidOperationError:
            raise DatasetError(
                f"{path}: column 'category': expected integers or"
                f" {CSV_LIST_SEPARATOR!r}-separated integers (e.g. 3|7)"
            ) from None
    elif isinstance(col.dtype, pl.List) and col.dtype.inner is not None:
        if not col.dtype.inner.is_integer():
            raise DatasetError(f"{path}: column 'category' has type {col.dtype}, expected ints")
        col = col.cast(pl.List(pl.Int64))
    elif col.dtype.is_integer():
        col = col.cast(pl.Int64).map_elements(lambda v: [v], return_dtype=pl.List(pl.Int64))
    else:
        raise DatasetError(f"{path}: column 'category' has type {col.dtype}, expected int(s)")
    frame = items.select("item_id").with_columns(col.alias("cats"))
    empty = frame["cats"].list.len().fill_null(0) == 0
    if empty.any():
        report.notes.append(
            f"{path}: column 'category': {int(empty.sum()):,} items without one are in category 0"
        )
        frame = frame.with_columns(
            pl.when(empty)
            .then(pl.lit([0], dtype=pl.List(pl.Int64)))
            .otherwise(pl.col("cats"))
            .alias("cats")
        )
    values = frame["cats"].explode()
    distinct = values.unique().sort()
    if distinct.min() >= 0 and distinct.max() < N_CATEGORIES:  # type: ignore[operator]
        return frame
    counts = values.value_counts(sort=True, name="n")
    ranked = counts.sort(["n", "cats"], descending=[True, False])["cats"].to_list()
    if len(ranked) <= N_CATEGORIES:
        mapping = {v: i for i, v in enumerate(ranked)}
        note = f"indexed by frequency into 0..{len(ranked) - 1}"
    else:
        keys = np.asarray(ranked, dtype=np.int64)
        slots = stable_hash(keys - keys.min(), 3) % np.uint64(N_CATEGORIES)
        mapping = dict(zip(ranked, slots.astype(np.int64).tolist(), strict=True))
        note = f"hashed into the model's {N_CATEGORIES} category slots"
    report.notes.append(f"{path}: column 'category': {len(ranked):,} category ids {note}")
    remapped = frame["cats"].list.eval(pl.element().replace_strict(mapping, default=0))
    return frame.with_columns(remapped.list.unique(maintain_order=True).alias("cats"))


def _creators(items: pl.DataFrame, path: Path, report: DatasetReport) -> pl.Series:
    """Creator per item: the dataset's ids when they fit float32 features, else indexed."""
    if "creator_id" not in items.columns:
        report.notes.append(f"{path}: no 'creator_id' column; each item is its own creator")
        return pl.Series("creator_id", np.arange(items.height, dtype=np.int64))
    given = _integers(items, path, "creator_id", nullable=True)
    nulls = given.null_count()
    if nulls == 0 and given.min() >= 0 and given.max() <= MAX_CREATOR_ID:  # type: ignore[operator]
        return given.alias("creator_id")
    # An item without a creator is its own creator (negative keys cannot meet a real id).
    keyed = pl.select(pl.coalesce(given, -1 - items["item_id"]).alias("k"))["k"]
    report.notes.append(
        f"{path}: column 'creator_id': {nulls:,} empty (each its own creator); ids indexed"
        f" densely to stay within 0..{MAX_CREATOR_ID:,}"
    )
    return (keyed.rank("dense") - 1).cast(pl.Int64).alias("creator_id")


def _videos(
    path: Path,
    raw: pl.DataFrame,
    interactions: pl.DataFrame,
    cfg: DataConfig,
    report: DatasetReport,
) -> pl.DataFrame:
    """The catalogue in ``VIDEO_SCHEMA``: missing optional fields derived and reported."""
    ids = _unique_ids(raw, path, "item_id", "item")
    items = raw.with_columns(ids.alias("item_id"))
    seen = interactions.group_by("item_id").agg(
        pl.col("ts").min().alias("first_ts"), pl.col("watch_ms").max().alias("max_watch")
    )
    facts = items.select("item_id").join(seen, on="item_id", how="left")
    if "upload_ts" in items.columns:
        upload = _integers(items, path, "upload_ts", nullable=True)
        _check_millis(upload.drop_nulls(), path, "upload_ts")
    else:
        upload = pl.Series("upload_ts", [None] * items.height, dtype=pl.Int64)
    start = int(interactions["ts"].min())  # type: ignore[arg-type]
    if upload.null_count():
        report.notes.append(
            f"{path}: column 'upload_ts': {upload.null_count():,} items without one are taken"
            " as uploaded at their first interaction (or the log's start)"
        )
    upload = pl.select(pl.coalesce(upload, facts["first_ts"], pl.lit(start)).alias("u"))["u"]
    if "duration_ms" in items.columns:
        duration = _integers(items, path, "duration_ms", nullable=True)
        bad = duration.filter(duration <= 0)
        if bad.len():
            raise DatasetError(
                f"{path}: column 'duration_ms': {bad.len():,} rows are not positive (e.g. {bad[0]})"
            )
    else:
        duration = pl.Series("duration_ms", [None] * items.height, dtype=pl.Int64)
    if duration.null_count():
        report.notes.append(
            f"{path}: column 'duration_ms': {duration.null_count():,} items without one take"
            f" their longest watch (or {cfg.default_duration_ms:,} ms)"
        )
    watched = facts["max_watch"].fill_null(0)
    duration = pl.select(
        pl.coalesce(
            duration, pl.when(watched > 0).then(watched), pl.lit(cfg.default_duration_ms)
        ).alias("d")
    )["d"]
    caption = (
        items["caption"].cast(pl.String).fill_null("")
        if "caption" in items.columns
        else pl.Series([""] * items.height)
    )
    cats = _categories(items, path, report)["cats"]
    videos = pl.DataFrame(
        {
            "video_id": items["item_id"],
            "creator_id": _creators(items, path, report),
            "category_ids": cats,
            "primary_category": cats.list.first(),
            "category_name": cats.list.first().cast(pl.String),
            "caption": caption,
            "duration_ms": duration.cast(pl.Int64),
            "upload_ts": upload.cast(pl.Int64),
        }
    ).sort("video_id")
    check_columns(videos, VIDEO_SCHEMA, f"videos from {path}")
    return videos


# --- users ---------------------------------------------------------------------------------


def _bucket(value: str, buckets: int) -> int:
    """A fixed hash of a string (same slot on any machine and Python)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little") % (
        buckets
    )


def _encode_features(
    raw: pl.DataFrame, path: Path, cfg: DataConfig, report: DatasetReport
) -> np.ndarray:
    """``float32[n, K]``: numbers as they are, strings one slot per value (or hashed), then
    every slot standardised over users, so no column's scale dominates."""
    parts: list[np.ndarray] = []
    for column in raw.columns:
        if column == "user_id":
            continue
        s = raw[column]
        if s.dtype.is_numeric() or s.dtype == pl.Boolean:
            v = s.cast(pl.Float64)
            bad = v.filter(v.is_nan() | v.is_infinite())
            if bad.len():
                raise DatasetError(f"{path}: column {column!r}: {bad.len():,} values are NaN/inf")
            mean = v.mean()
            parts.append(v.fill_null(mean if mean is not None else 0.0).to_numpy()[:, None])
        elif s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
            text = s.cast(pl.String).fill_null("<null>")
            values = sorted(text.unique().to_list())
            if len(values) <= cfg.user_onehot_max:
                slot = {v: i for i, v in enumerate(values)}
                width = len(values)
            else:
                slot = {v: _bucket(f"{column}={v}", cfg.user_hash_buckets) for v in values}
                width = cfg.user_hash_buckets
                report.notes.append(
                    f"{path}: column {column!r}: {len(values):,} values hashed into"
                    f" {width} slots (data.user_onehot_max = {cfg.user_onehot_max})"
                )
            index = text.replace_strict(slot, return_dtype=pl.Int64).to_numpy()
            onehot = np.zeros((raw.height, width))
            onehot[np.arange(raw.height), index] = 1.0
            parts.append(onehot)
        else:
            raise DatasetError(
                f"{path}: column {column!r} has type {s.dtype}; user features are numbers,"
                " booleans or strings"
            )
    if not parts:  # no feature columns: one constant slot keeps the vector's shape
        return np.zeros((raw.height, 1), dtype=np.float32)
    x = np.concatenate(parts, axis=1)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    return ((x - x.mean(axis=0)) / std).astype(np.float32)


def _users(
    path: Path | None, user_ids: pl.Series, cfg: DataConfig, report: DatasetReport
) -> pl.DataFrame:
    """Users in ``USERS_SCHEMA``; region/device from the columns of those names or a hash."""
    if path is None:
        raw = pl.DataFrame({"user_id": user_ids.unique().sort()})
        report.notes.append("no users file: users have no features of their own")
    else:
        raw = _read(path)
        ids = _unique_ids(raw, path, "user_id", "user")
        raw = raw.with_columns(ids).sort("user_id")
    static = _encode_features(raw, path or Path(USERS), cfg, report)
    ids_np = raw["user_id"].to_numpy()

    def named(column: str, choices: Sequence[str], salt: int) -> pl.Series:
        derived = pl.Series(
            np.asarray(choices)[stable_hash(ids_np, salt) % np.uint64(len(choices))]
        )
        if column in raw.columns and raw[column].dtype == pl.String:
            return raw[column].fill_null(derived)
        return derived

    users = pl.DataFrame(
        {
            "user_id": raw["user_id"],
            "region": named("region", cfg.regions, 1),
            "device": named("device", cfg.devices, 2),
            "activity": named("activity", ("UNKNOWN",), 3),
            "static": pl.Series(static).cast(pl.Array(pl.Float32, static.shape[1])),
        }
    )
    check_columns(users, USER_SCHEMA, f"users from {path or 'interactions'}")
    return users


# --- interactions --------------------------------------------------------------------------


def _interactions(path: Path) -> pl.DataFrame:
    """The interactions file checked and typed; ``row`` is the line of each row in the file."""
    raw = _read(path)
    _require(raw, path, ["user_id", "item_id", "ts", "event"])
    if raw.height == 0:
        raise DatasetError(f"{path}: no rows")
    cols: dict[str, pl.Series] = {"row": pl.Series(np.arange(raw.height, dtype=np.int64))}
    for column in ("user_id", "item_id"):
        cols[column] = _integers(raw, path, column)
        _check_ids(cols[column], path, column)
    cols["ts"] = _integers(raw, path, "ts")
    _check_millis(cols["ts"], path, "ts")
    event = raw["event"].cast(pl.String)
    unknown = event.filter(~event.is_in(ENGAGEMENT_TYPES) | event.is_null())
    if unknown.len():
        values = unknown.fill_null("<empty>").value_counts(sort=True)
        shown = ", ".join(f"{v!r} ×{n:,}" for v, n in values.head(5).iter_rows())
        raise DatasetError(
            f"{path}: column 'event': {unknown.len():,} rows have an unknown event type ({shown});"
            f" expected one of {', '.join(ENGAGEMENT_TYPES)}"
        )
    cols["event"] = event
    watch = _integers(raw, path, "watch_ms", nullable=True) if "watch_ms" in raw.columns else None
    if watch is not None and (watch < 0).any():
        raise DatasetError(f"{path}: column 'watch_ms': {int((watch < 0).sum()):,} are negative")
    cols["watch_ms"] = (watch if watch is not None else pl.Series([0] * raw.height)).fill_null(0)
    position = (
        _integers(raw, path, "position", nullable=True) if "position" in raw.columns else None
    )
    cols["position"] = (
        (position if position is not None else pl.Series([None] * raw.height, dtype=pl.Int64))
        .fill_null(-1)
        .cast(pl.Int32)
    )
    cols["request_id"] = (
        raw["request_id"].cast(pl.String)
        if "request_id" in raw.columns
        else pl.Series([None] * raw.height, dtype=pl.String)
    )
    if SPLIT in raw.columns:
        split = raw[SPLIT].cast(pl.String)
        bad = split.filter(~split.is_in(SPLITS) | split.is_null())
        if bad.len():
            raise DatasetError(
                f"{path}: column 'split': {bad.len():,} rows are not one of"
                f" {', '.join(SPLITS)} (e.g. {bad[0]!r})"
            )
        cols[SPLIT] = split
    return pl.DataFrame({name: s.alias(name) for name, s in cols.items()})


def _request_ids(interactions: pl.DataFrame, report: DatasetReport) -> pl.DataFrame:
    """Without ``request_id``, a page is one user's impressions at one ts, and an outcome
    belongs to the latest impression of the same user and item at or before it."""
    pages = pl.format("{}:{}", "user_id", "ts")
    imps = interactions.filter(pl.col("event") == EventType.IMPRESSION.value).select(
        "user_id", "item_id", "ts", pages.alias("page")
    )
    linked = (
        interactions.sort("ts")
        .join_asof(imps.sort("ts"), on="ts", by=["user_id", "item_id"], check_sortedness=False)
        .with_columns(
            pl.when(pl.col("event") == EventType.IMPRESSION.value)
            .then(pages)
            .otherwise(pl.col("page"))
            .alias("request_id")
        )
        .drop("page")
    )
    orphans = linked.filter(pl.col("request_id").is_null()).height
    report.notes.append(
        "no 'request_id' column: a page is one user's impressions at one ts"
        + (
            f"; {orphans:,} outcomes follow no impression (features only, no label)"
            if orphans
            else ""
        )
    )
    return linked


def load_dataset(root: str | Path, cfg: DataConfig | None = None) -> Dataset:
    """Read and validate the dataset in ``root`` (docs/datasets.md)."""
    cfg = cfg or DataConfig()
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found")
    ipath = _find(root, INTERACTIONS, required=True)
    items_path = _find(root, ITEMS, required=True)
    users_path = _find(root, USERS, required=False)
    assert ipath is not None and items_path is not None
    report = DatasetReport()
    inter = _interactions(ipath)
    total = report.interactions = inter.height

    key = ["user_id", "item_id", "ts", "event"]
    key += ["request_id"] if inter["request_id"].null_count() < total else []
    inter = _skip(
        inter,
        inter.select(pl.struct(key).is_first_distinct().not_()).to_series(),
        "duplicate",
        f"{ipath}: columns {', '.join(key)}: repeated rows",
        cfg.max_duplicate_share,
        "max_duplicate_share",
        total,
        report,
    )
    items_raw = _read(items_path)
    _require(items_raw, items_path, ["item_id"])
    known_items = _integers(items_raw, items_path, "item_id")
    inter = _skip(
        inter,
        ~inter["item_id"].is_in(known_items.implode()),
        "unknown_item",
        f"{ipath}: column 'item_id': ids not in {items_path.name}",
        cfg.max_unknown_item_share,
        "max_unknown_item_share",
        total,
        report,
    )
    if inter.height == 0:
        raise DatasetError(f"{ipath}: no interaction is left to train on")
    videos = _videos(items_path, items_raw, inter, cfg, report)
    upload = inter.join(
        videos.select(pl.col("video_id").alias("item_id"), "upload_ts"), on="item_id", how="left"
    )["upload_ts"]
    inter = _skip(
        inter,
        inter["ts"] < upload,
        "before_upload",
        f"{ipath}: column 'ts': events before their item's upload_ts in {items_path.name}",
        cfg.max_before_upload_share,
        "max_before_upload_share",
        total,
        report,
    )
    users = _users(users_path, inter["user_id"], cfg, report)
    if users_path is not None:
        inter = _skip(
            inter,
            ~inter["user_id"].is_in(users["user_id"].implode()),
            "unknown_user",
            f"{ipath}: column 'user_id': ids not in {users_path.name}",
            cfg.max_unknown_user_share,
            "max_unknown_user_share",
            total,
            report,
        )
    for needed in (EventType.IMPRESSION, EventType.CLICK):
        if not (inter["event"] == needed.value).any():
            raise DatasetError(
                f"{ipath}: column 'event': no {needed.value!r} rows; the ranker learns from"
                " impressions and the two-tower model from clicks"
            )
    idle = videos.height - videos["video_id"].is_in(inter["item_id"].implode()).sum()
    if idle:
        report.notes.append(
            f"{items_path}: {idle:,} of {videos.height:,} items have no interaction; kept"
            " (retrievable, with cold features)"
        )
    if inter["request_id"].null_count() == inter.height:
        inter = _request_ids(inter, report)
    inter = inter.sort("ts", "row").with_columns(pl.format("row-{}", "row").alias("event_id"))
    report.kept = inter.height
    return Dataset(
        videos=videos,
        users=users,
        interactions=inter.drop("row"),
        events=_events(inter, videos, users),
        report=report,
    )


def _events(inter: pl.DataFrame, videos: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """The interactions as an ``EVENT_SCHEMA`` log: durations from the items, region and
    device from the users, so features and trending read them as from the lake."""
    durations = videos.select(pl.col("video_id").alias("item_id"), "duration_ms")
    return (
        inter.join(durations, on="item_id", how="left")
        .join(users.select("user_id", "region", "device"), on="user_id", how="left")
        .select(
            "event_id",
            "user_id",
            pl.col("item_id").alias("video_id"),
            pl.col("event").alias("type"),
            "watch_ms",
            pl.col("duration_ms").alias("video_duration_ms"),
            "position",
            pl.lit("home").alias("surface"),
            "request_id",
            "ts",
            "device",
            "region",
        )
        .cast(dict(EVENT_SCHEMA))  # type: ignore[arg-type]
    )
