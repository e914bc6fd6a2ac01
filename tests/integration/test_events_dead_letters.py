"""A poison entry never stops a stream consumer (real 3-master Redis Cluster).

Entries are written straight to the streams with XADD, as an attacker or a buggy producer
could, bypassing the API's validation. Each consumer must keep applying the valid entries
around them, set every poison entry aside in its group's dead-letter stream (original fields,
consumer, reason) exactly once, count it, and ack it. The lag gauge must show a consumer that
stopped, whether it died holding a batch or never came back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster
from typer.testing import CliRunner

from tests.integration.redis_servers import redis_cluster
from tests.integration.test_events_processor import config, make_events
from tests.unit.test_coldstart_index import NEW_ID, embedder, lookalike  # noqa: F401
from vidrec.backends.coldstart import ColdStart, ItemEmbedder
from vidrec.backends.retrieval import LocalRetrieval
from vidrec.backends.serving_state import ServingState
from vidrec.cli import app
from vidrec.config import Config
from vidrec.contracts import dead_letters
from vidrec.contracts.dead_letters import MISSING, OUT_OF_RANGE, REJECTED, UNPARSEABLE
from vidrec.contracts.keys import dead_letter_stream
from vidrec.events.event_log import read_events
from vidrec.events.lake import LakeWriter
from vidrec.events.processor import EventProcessor, Tally
from vidrec.events.processor_metrics import PrometheusEvents, StreamCollector
from vidrec.events.streams import Entry, stream_names
from vidrec.schema import EngagementEvent, EventType

pytestmark = pytest.mark.integration  # starts a real redis-server cluster

GOOD = dict(event_id="p", user_id=1, video_id=2, type="click", ts=1_600_000_000_000)
# (fields, the reason a consumer must give). 2**70 is refused by the schema's id bound, or
# (without one) by the lake's Int64 column: either way it is set aside, never crashes.
POISON: list[tuple[dict[str, str], tuple[str, ...]]] = [
    ({"event": json.dumps(GOOD | {"event_id": "big", "user_id": 2**70})},
     (UNPARSEABLE, OUT_OF_RANGE)),
    ({"event": json.dumps(GOOD | {"event_id": "nan", "video_id": "abc"})}, (UNPARSEABLE,)),
    ({"event": json.dumps({k: v for k, v in GOOD.items() if k != "ts"})}, (UNPARSEABLE,)),
    ({"event": "{garbage"}, (UNPARSEABLE,)),
    ({"something": "else"}, (MISSING,)),
]  # fmt: skip


@pytest.fixture(scope="module")
def client() -> Iterator[RedisCluster]:
    with redis_cluster() as info:
        c = RedisCluster.from_url(info.url)
        yield c
        c.close()


def write_mixed(
    client: RedisCluster, cfg: Config, good: list[EngagementEvent]
) -> dict[str, tuple[str, dict[str, str], tuple[str, ...]]]:
    """XADD the valid events with the poison entries spread among them; returns the poison
    entries by stream id: (stream, fields, acceptable reasons)."""
    streams = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)
    poison: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {}
    every = max(len(good) // len(POISON), 1)
    for i, ev in enumerate(good):
        stream = streams[ev.user_id % len(streams)]
        client.xadd(stream, {"event": ev.model_dump_json()})
        if i % every == 0 and i // every < len(POISON):
            fields, reasons = POISON[i // every]
            entry_id = client.xadd(stream, fields)  # type: ignore[arg-type]
            poison[entry_id.decode()] = (stream, fields, reasons)  # type: ignore[union-attr]
    assert len(poison) == len(POISON)
    return poison


def settled(client: RedisCluster, cfg: Config, group: str) -> bool:
    """Nothing undelivered and nothing pending for ``group`` on any partition."""
    for s in stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions):
        infos: list[dict[str, Any]] = client.xinfo_groups(s)  # type: ignore[assignment]
        info = next(g for g in infos if g["name"] in (group, group.encode()))
        if info["pending"] or info["lag"]:
            return False
    return True


def run_until(target: Callable[[threading.Event], None], done: Callable[[], bool]) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    alive = thread.is_alive()
    stop.set()
    thread.join(timeout=10)
    assert alive, "the consumer died"
    assert done(), "the consumer did not settle the streams in time"


def assert_dead_lettered(
    client: RedisCluster,
    group: str,
    poison: dict[str, tuple[str, dict[str, str], tuple[str, ...]]],
) -> list[dead_letters.DeadLetter]:
    letters = dead_letters.read(client, group, count=1000)
    assert sorted(d.source_id for d in letters) == sorted(poison)  # each exactly once
    for letter in letters:
        stream, fields, reasons = poison[letter.source_id]
        assert letter.source == stream and letter.fields == fields
        assert letter.reason in reasons and letter.error and letter.group == group
    return letters


def test_lake_writes_the_valid_events_and_dead_letters_the_poison(
    client: RedisCluster, tmp_path: Path
) -> None:
    cfg, group, lake = config("dlk"), "lake-poison", tmp_path / "lake"
    good = make_events(120, seed=5)
    poison = write_mixed(client, cfg, good)
    registry = CollectorRegistry()
    metrics = PrometheusEvents(registry, "b")

    # "a" reads a batch holding poison and crashes before writing it (no XACK): the batch
    # stays pending, as when the writer died on the overflow and restarted.
    a = LakeWriter(client, cfg, lake, group=group, consumer="a", count=100, block_ms=20)
    a.reader.ensure_groups()
    assert any(e.event is None for e in a.reader.read())
    b = LakeWriter(client, cfg, lake, group=group, consumer="b", count=7, block_ms=20,
                   claim_min_idle_ms=0, max_events=25, max_age_s=0.0,
                   observer=metrics)  # fmt: skip
    run_until(b.run, lambda: settled(client, cfg, group))

    table = read_events(lake)
    assert sorted(table["event_id"].to_list()) == sorted(e.event_id for e in good)
    letters = assert_dead_lettered(client, group, poison)
    assert {d.consumer for d in letters} == {"b"}
    by_reason = Counter(d.reason for d in letters)
    for reason, n in by_reason.items():
        got = registry.get_sample_value(
            "vidrec_dead_letters_total", {"group": group, "reason": reason}
        )
        assert got == n

    # A restart with nothing pending sets nothing aside again and writes nothing new.
    again = LakeWriter(client, cfg, lake, group=group, consumer="c", claim_min_idle_ms=0)
    assert again.step() == 0
    assert len(dead_letters.read(client, group, count=1000)) == len(POISON)


def test_a_batch_whose_file_fails_on_one_entry_keeps_the_others(
    client: RedisCluster, tmp_path: Path
) -> None:
    """The net behind parsing: an event it let through (built without validation, as a
    schema change could) that the Int64 column cannot hold fails its file; the writer then
    writes the batch's other events and dead-letters that one."""
    cfg, group, lake = config("dlf"), "lake-isolate", tmp_path / "lake"
    good = make_events(6, seed=6)
    bad = EngagementEvent.model_construct(**(GOOD | {"event_id": "huge", "user_id": 2**70,
                                                     "type": EventType.CLICK}))  # fmt: skip
    stream = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)[0]
    entries = [Entry(stream, f"{i + 1}-0", ev, {"event": ev.model_dump_json()})
               for i, ev in enumerate([*good[:3], bad, *good[3:]])]  # fmt: skip
    tally = Tally()
    writer = LakeWriter(client, cfg, lake, group=group, consumer="w", observer=tally)
    writer.write(entries)

    assert sorted(read_events(lake)["event_id"].to_list()) == sorted(e.event_id for e in good)
    (letter,) = dead_letters.read(client, group)
    assert (letter.source, letter.source_id, letter.reason) == (stream, "4-0", REJECTED)
    assert "huge" in letter.fields["event"] and "ComputeError" in letter.error
    assert tally.dead == {(group, REJECTED): 1}


def test_processor_applies_the_valid_events_and_dead_letters_the_poison(
    client: RedisCluster,
) -> None:
    cfg, group = config("dlp"), "rt-poison"
    good = make_events(120, seed=7)
    poison = write_mixed(client, cfg, good)
    tally = Tally()
    proc = EventProcessor(client, cfg, group=group, consumer="p", count=9, block_ms=20,
                          observer=tally)  # fmt: skip
    run_until(proc.run, lambda: settled(client, cfg, group))

    by_video = Counter((e.video_id, e.type) for e in good)
    for video in range(20):
        got = proc.counters.read(video)
        assert got.impressions["1h"] == by_video[(video, EventType.IMPRESSION)]
        assert got.clicks["1h"] == by_video[(video, EventType.CLICK)]
    assert tally.n_processed == len(good)
    assert_dead_lettered(client, group, poison)
    assert sum(tally.dead.values()) == len(POISON)

    # An event that passes parsing but fails when applied alone (a video id numpy cannot
    # hold) is dead-lettered; the events of its batch are still applied.
    click = {"video_id": 19, "type": EventType.CLICK}
    clicks = [good[0].model_copy(update=click | {"event_id": f"x{i}"}) for i in range(2)]
    huge = {"event_id": "bad", "video_id": 2**70, "type": EventType.NOT_INTERESTED}
    bad = EngagementEvent.model_construct(**(GOOD | huge))
    stream = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)[0]
    before = proc.counters.read(19).clicks["1h"]
    proc.apply([Entry(stream, "1-1", clicks[0], {}), Entry(stream, "1-2", bad, {"event": "b"}),
                Entry(stream, "1-3", clicks[1], {})])  # fmt: skip
    assert proc.counters.read(19).clicks["1h"] == before + 2
    rejected = [d for d in dead_letters.read(client, group, 100) if d.reason == REJECTED]
    assert [(d.source_id, d.fields) for d in rejected] == [("1-2", {"event": "b"})]


def lag(registry: CollectorRegistry, group: str) -> tuple[float | None, float | None]:
    return (registry.get_sample_value("vidrec_consumer_lag", {"group": group}),
            registry.get_sample_value("vidrec_consumer_pending", {"group": group}))  # fmt: skip


def test_lag_of_a_stopped_consumer_grows(client: RedisCluster) -> None:
    cfg, group = config("dll"), "lake-stopped"
    streams = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)
    registry = CollectorRegistry()
    registry.register(StreamCollector(client, streams, [dead_letter_stream(group)]))
    writer = LakeWriter(client, cfg, Path("/nonexistent"), group=group, consumer="s", count=1000)
    writer.reader.ensure_groups()
    write_mixed(client, cfg, make_events(40, seed=8))
    assert lag(registry, group) == (45.0, 0.0)

    # It reads everything and dies before acking (the crash loop): nothing is undelivered,
    # everything is pending. Counting undelivered entries alone said 0 here.
    assert len(writer.reader.read()) == 45
    assert lag(registry, group) == (45.0, 45.0)

    # Down for good: every new entry adds to its lag.
    write_mixed(client, cfg, make_events(40, seed=9, start=40))
    assert lag(registry, group) == (90.0, 45.0)

    # An entry deleted from the stream leaves Redis unable to count (lag: null): the gauge
    # falls back to an upper bound instead of 0.
    last: list[Any] = client.xrevrange(streams[0], count=1)  # type: ignore[assignment]
    client.xdel(streams[0], last[0][0])
    total, held = lag(registry, group)
    assert total is not None and total >= 89.0 and held == 45.0


def test_cold_start_adds_valid_uploads_and_dead_letters_the_poison_once(
    client: RedisCluster,
    artefacts: Path,
    embedder: ItemEmbedder,  # noqa: F811
) -> None:
    cfg = config("dlc")
    stream = f"{cfg.serving.event_stream_prefix}:videos"
    events = cfg.events
    state = ServingState.load(artefacts)
    cat = state.catalogue
    uploads = [lookalike(state, int(cat.video_id[i]), NEW_ID + i) for i in range(3)]
    impression = EngagementEvent(event_id="i", user_id=1, video_id=2, type=EventType.IMPRESSION,
                                 ts=state.clock_ms())  # fmt: skip
    poison_fields = [
        {"video": uploads[0].model_copy(update={"creator_id": 2**70}).model_dump_json()},
        {"video": "{not json"},
        {"video": json.dumps({"video_id": "abc"})},
        {"event": impression.model_dump_json()},
        {"something": "else"},
    ]
    replicas = [
        ColdStart(client, stream, LocalRetrieval(ServingState.load(artefacts)), embedder, None,
                  block_ms=50, events=events, consumer=f"pod-{i}")
        for i in range(2)
    ]  # fmt: skip
    for replica in replicas:
        replica.cursor = "0-0"
    ids = []
    for upload, fields in zip(uploads, poison_fields, strict=False):
        ids.append(client.xadd(stream, {"video": upload.model_dump_json()}))
        ids.append(client.xadd(stream, fields))  # type: ignore[arg-type]
    for fields in poison_fields[len(uploads) :]:
        ids.append(client.xadd(stream, fields))  # type: ignore[arg-type]

    last = ids[-1].decode()  # type: ignore[union-attr]
    for replica in replicas:  # every replica reads every entry
        for _ in range(20):
            if replica.cursor == last:
                break
            replica.poll(block_ms=1)
        assert replica.cursor == last and replica.stats.added == len(uploads)
        known = replica.retrieval.catalogue.rows(np.asarray([u.video_id for u in uploads]))[1]
        assert known.all()
        assert sum(replica.stats.dead_letters.values()) == len(poison_fields)

    letters = dead_letters.read(client, events.coldstart_group, 100)
    assert [d.fields for d in letters] == poison_fields  # once, though both set them aside
    assert {d.consumer for d in letters} == {"pod-0"} and {d.source for d in letters} == {stream}
    reasons = [d.reason for d in letters]
    assert reasons[0] in (UNPARSEABLE, OUT_OF_RANGE)  # creator 2**70: id bound or Int64
    assert reasons[1:] == [UNPARSEABLE, UNPARSEABLE, UNPARSEABLE, MISSING]


def test_cli_lists_and_replays_dead_letters(
    client: RedisCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vidrec events dead-letters [--replay]` through the real CLI and config."""
    cfg, group = config("dlr"), "rt-replay"
    stream = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)[1]
    fields = {"event": json.dumps(GOOD | {"event_id": "late", "ts": "soon"})}
    proc = EventProcessor(client, cfg, group=group, consumer="p", block_ms=20)
    proc.reader.ensure_groups()
    first = client.xadd(stream, fields).decode()  # type: ignore[arg-type, union-attr]
    proc.step()  # recovery: nothing pending
    proc.step()  # reads the entry, sets it aside, acks it
    node = client.get_node_from_key(stream)
    monkeypatch.setenv("VIDREC_REDIS__URL", f"redis://{node.host}:{node.port}/0")
    monkeypatch.setenv("VIDREC_REDIS__CLUSTER", "true")

    runner = CliRunner()
    listed = runner.invoke(app, ["events", "dead-letters", "--group", group])
    assert listed.exit_code == 0, listed.output
    (line,) = [json.loads(x) for x in listed.output.splitlines()]
    assert (line["source"], line["source_id"], line["reason"], line["consumer"]) == (
        stream,
        first,
        UNPARSEABLE,
        "p",
    )
    assert line["fields"] == fields and "ts" in line["error"]

    replayed = runner.invoke(app, ["events", "dead-letters", "--group", group, "--replay"])
    assert replayed.exit_code == 0 and f"replayed 1 of {group}" in replayed.output
    assert dead_letters.read(client, group) == []
    entries: list[Any] = client.xrange(stream)  # type: ignore[assignment]
    last_id, last_fields = entries[-1]
    assert last_id.decode() != first
    assert {k.decode(): v.decode() for k, v in last_fields.items()} == fields
    proc.step()  # still poison: set aside again, under its new id
    (again,) = dead_letters.read(client, group)
    assert again.source_id == last_id.decode()
