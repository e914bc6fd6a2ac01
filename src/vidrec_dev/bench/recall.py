"""`vidrec bench recall`: recall of every retrieval source on the held-out last day.

Serving changes that precompute (item-item neighbour lists instead of per-request searches)
must not cost recall, so this runs each source of the home feed in-process, with
:class:`~vidrec.backends.retrieval.LocalRetrieval` as serving runs it, for every user who clicks
on the test day (the state at their first test-day click: history strictly before it), and
scores the candidates against that day's clicks. Rule tables (trending, popularity) and "now"
are taken at the start of the test day, so no source sees the day it is judged on.

item_item runs twice, searching the index per anchor and gathering the precomputed lists
(built in memory when the artefact has none), side by side with their overlap and cost.
Results go to ``OUT/recall.json``; the table is printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState, trending_by_region
from vidrec.config import Config, ServingConfig, load_config
from vidrec.contracts.catalogue import Catalogue
from vidrec.data import load_catalog
from vidrec.events.event_log import read_event_log
from vidrec.features import build_training_tables
from vidrec.models.evaluate import RetrievalQueries, retrieval_queries
from vidrec.models.metrics import hit_matrix, recall_at_k, split_by_day
from vidrec.models.two_tower import RETRIEVAL_TABLE
from vidrec.offline.catalog import videos_as_of_log
from vidrec.offline.run import privacy_view
from vidrec.offline.serving_prep import rule_tables
from vidrec.pipeline.retrievers import Query
from vidrec.pipeline.sources.base import HISTORY_SEEDS
from vidrec.ranking.signature import HISTORY_INPUT, USER_X_INPUT
from vidrec.retrieval import build_neighbour_lists

COMMON_K = 50  # every source is also scored at this depth, so rows compare
RESULTS_FILE = "recall.json"


@dataclasses.dataclass(frozen=True)
class HeldOutDay:
    """The test day's queries, the users' regions and the cut-off the rule tables use."""

    queries: RetrievalQueries
    regions: list[str]
    start_ms: int
    events: pl.DataFrame
    videos: pl.DataFrame


def held_out_day(root: Path, state: ServingState, cfg: Config, progress: bool) -> HeldOutDay:
    """Point-in-time retrieval examples rebuilt from the artefact's own event log."""
    events_path = root / state.manifest.artefacts.get("events", "data/events.parquet")
    log = read_event_log(events_path)
    catalog = load_catalog(cfg.data.kuairec_dir, seed=state.manifest.seed)
    private = privacy_view(log, catalog.users, cfg, None)
    videos = videos_as_of_log(catalog.videos, private.events, str(events_path))
    tables = build_training_tables(private.events, videos, private.users, cfg.features, progress)
    _, _, test = split_by_day(tables.retrieval, RETRIEVAL_TABLE)
    queries = retrieval_queries(test)
    users = private.users
    region = dict(zip(users["user_id"].to_list(), users["region"].to_list(), strict=True))
    default = cfg.serving.default_region
    return HeldOutDay(
        queries=queries,
        regions=[str(region.get(int(u)) or default) for u in queries.user_ids],
        start_ms=int(test["ts"].min()),  # type: ignore[arg-type]
        events=private.events,
        videos=videos,
    )


def state_at(state: ServingState, day: HeldOutDay) -> ServingState:
    """``state`` with popularity, trending and the clock as they were when the day began."""
    table, trending = rule_tables(day.videos, day.events, day.start_ms)
    return dataclasses.replace(
        state,
        catalogue=Catalogue.from_table(table),
        trending=trending_by_region(trending),
        now_override_ms=day.start_ms,
    )


def _padded(rows: list[list[int]], k: int) -> np.ndarray:
    out = np.full((len(rows), k), -1, np.int64)
    for i, row in enumerate(rows):
        out[i, : min(k, len(row))] = row[:k]
    return out


def _ids(result: Any) -> list[int]:
    """Candidate ids of a source's answer (an iterable of records)."""
    return [int(v.video_id) for v in result]


async def _per_user(n: int, call: Callable[[int], Awaitable[Any]]) -> tuple[list[list[int]], float]:
    """Each user's candidate ids, and the mean wall ms per call (one at a time)."""
    rows: list[list[int]] = []
    start = time.perf_counter()
    for u in range(n):
        rows.append(_ids(await call(u)))
    return rows, (time.perf_counter() - start) * 1000 / max(n, 1)


def _two_tower(r: LocalRetrieval, q: RetrievalQueries, k: int) -> list[list[int]]:
    """The serving path's user tower + ANN index, batched (user_x is already tower input)."""
    feeds = {USER_X_INPUT: q.user_x.astype(np.float32), HISTORY_INPUT: q.history}
    (emb,) = r.state.user_tower.run(None, feeds)
    ids, _ = r.index.search(np.asarray(emb, np.float32), k)
    return [row[row >= 0].tolist() for row in ids]


def evaluate(state: ServingState, day: HeldOutDay, serving: ServingConfig) -> dict[str, Any]:
    """Recall per source; item_item by search and by lists, their overlap and ms per call."""
    q = day.queries
    lists = state.neighbours
    built_lists = lists is None
    if lists is None:
        lists = build_neighbour_lists(
            state.index, state.item_embeddings, state.embedding_ids, serving.neighbours_k
        )
    searched = LocalRetrieval(dataclasses.replace(state, neighbours=None), serving)
    listed = LocalRetrieval(dataclasses.replace(state, neighbours=lists), serving)
    seeds = [[int(v) for v in h[h >= 0][:HISTORY_SEEDS]] for h in q.history]
    n = q.user_ids.size

    async def run_sources() -> dict[str, tuple[list[list[int]], int, float]]:
        out: dict[str, tuple[list[list[int]], int, float]] = {}
        k = serving.related_k
        rows, ms = await _per_user(
            n, lambda u: searched.retrieve("related", Query(video_ids=tuple(seeds[u])), k)
        )
        out["item_item (search)"] = (rows, k, ms)
        rows, ms = await _per_user(
            n, lambda u: listed.retrieve("related", Query(video_ids=tuple(seeds[u])), k)
        )
        out["item_item (lists)"] = (rows, k, ms)
        rows, ms = await _per_user(
            n,
            lambda u: listed.retrieve("trending", Query(region=day.regions[u]), serving.trending_k),
        )
        out["trending"] = (rows, serving.trending_k, ms)
        rows, ms = await _per_user(
            n, lambda u: listed.retrieve("fresh", Query(now_ms=day.start_ms), serving.fresh_k)
        )
        out["fresh"] = (rows, serving.fresh_k, ms)
        k = serving.same_creator_k
        rows, ms = await _per_user(
            n, lambda u: listed.retrieve("same_creator", Query(video_ids=tuple(seeds[u])), k)
        )
        out["same_creator"] = (rows, k, ms)
        return out

    start = time.perf_counter()
    rows = _two_tower(listed, q, serving.two_tower_k)
    ms = (time.perf_counter() - start) * 1000 / max(n, 1)  # batched: not a per-request cost
    results = {"two_tower": (rows, serving.two_tower_k, ms)} | asyncio.run(run_sources())
    union = [
        list(dict.fromkeys(v for name in results if name != "item_item (search)"
                           for v in results[name][0][u]))
        for u in range(n)
    ]  # fmt: skip
    sources: dict[str, dict[str, float]] = {}
    for name, (rows, k, ms) in results.items():
        sources[name] = _recalls(q, rows, k) | {"ms_per_call": ms}
    # The union has no order of its own (the ranker gives it one): only its full depth counts.
    sources["all (union, lists)"] = _recalls(q, union, max(len(r) for r in union))
    sources["all (union, lists)"][f"recall@{COMMON_K}"] = float("nan")
    a, b = results["item_item (search)"][0], results["item_item (lists)"][0]
    overlap = [len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True) if x]
    return {
        "artefacts": str(state.root),
        "test_users": int(n),
        "users_with_seeds": int(sum(1 for s in seeds if s)),
        "test_day_start_ms": day.start_ms,
        "neighbours_k": lists.k,
        "neighbours_built_here": built_lists,
        "item_item_overlap_lists_vs_search": float(np.mean(overlap)) if overlap else None,
        "sources": sources,
    }


def _recalls(q: RetrievalQueries, rows: list[list[int]], k: int) -> dict[str, float]:
    rec = _padded(rows, max(k, COMMON_K))
    hits, n_relevant = hit_matrix(rec, q.relevant_user, q.relevant_item)
    return {
        "k": float(k),
        "recall@k": recall_at_k(hits, n_relevant, k),
        f"recall@{COMMON_K}": recall_at_k(hits, n_relevant, COMMON_K),
        "mean_candidates": float(np.mean([len(r) for r in rows])),
    }


def _cell(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.4f}"


def report(r: dict[str, Any], console: Console) -> None:
    table = Table(title=f"recall on the test day: {r['test_users']} users ({r['artefacts']})")
    for col in ("source", "K", "recall@K", f"recall@{COMMON_K}", "candidates", "ms/call"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, s in r["sources"].items():
        ms = s.get("ms_per_call")
        table.add_row(
            name, f"{s['k']:.0f}", f"{s['recall@k']:.4f}", _cell(s[f"recall@{COMMON_K}"]),
            f"{s['mean_candidates']:.0f}", "" if ms is None else f"{ms:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"item_item top-{r['neighbours_k']} overlap, lists vs search: "
        f"{r['item_item_overlap_lists_vs_search']:.4f}"
        + (" (lists built in memory: the artefact has none)" if r["neighbours_built_here"] else "")
    )


def run(artefacts: Path, out: Path, progress: bool = True) -> dict[str, Any]:
    """Evaluate ``artefacts`` and write ``out/recall.json``."""
    console = Console()
    cfg = load_config()
    state = ServingState.load(artefacts)
    console.print("[bold cyan]▶[/] point-in-time features for the test day …")
    day = held_out_day(artefacts, state, cfg, progress)
    console.print(f"[bold cyan]▶[/] {day.queries.user_ids.size} test users, every source …")
    result = evaluate(state_at(state, day), day, cfg.serving)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_FILE).write_text(json.dumps(result, indent=2) + "\n")
    report(result, console)
    console.print(f"→ {out / RESULTS_FILE}")
    return result
