"""``python -m vidrec.events process|lake``: run one consumer until SIGTERM/SIGINT;
``dead-letters [--group G] [--count N] [--replay]``: list (or replay) what consumers set aside.

Settings come from :func:`vidrec.config.load_config` (Redis URL and cluster flag, stream
prefix and partitions, artefacts dir for the creator lookup). On SIGTERM the loop finishes
its batch (the lake writer flushes its buffer) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from vidrec.config import Config, RedisConfig, load_config
from vidrec.contracts import dead_letters
from vidrec.contracts.catalogue import read_catalogue
from vidrec.contracts.keys import dead_letter_stream
from vidrec.events.lake import LakeWriter
from vidrec.events.processor import EventProcessor
from vidrec.events.processor_metrics import PrometheusEvents, StreamCollector
from vidrec.events.streams import Client, default_consumer, stream_names
from vidrec.security import redis_conn


def connect(cfg: RedisConfig, block_ms: int) -> Client:
    # Blocking reads wait up to block_ms: the socket timeout must outlast them.
    timeout = max(cfg.socket_timeout_s, block_ms / 1000 + 1.0)
    return redis_conn.client(cfg, socket_timeout=timeout)  # AUTH / TLS from cfg


def main(argv: list[str] | None = None) -> int:
    cfg = load_config()
    parser = argparse.ArgumentParser(prog="python -m vidrec.events")
    parser.add_argument("command", choices=["process", "lake", "dead-letters"])
    parser.add_argument("--metrics-port", type=int, default=cfg.events.processor_metrics_port)
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.add_argument("--out", type=Path, help="lake directory (lake)")
    parser.add_argument("--consumer", default=default_consumer())
    parser.add_argument("--group", action="append", help="dead-letters: a group (default: all)")
    parser.add_argument("--count", type=int, default=100, help="dead-letters: oldest N per group")
    parser.add_argument("--replay", action="store_true", help="dead-letters: re-append them")
    args = parser.parse_args(argv)
    if args.command == "lake" and args.out is None:
        parser.error("lake needs --out DIR")
    client = connect(cfg.redis, cfg.events.block_ms)
    if args.command == "dead-letters":
        show_dead_letters(client, args.group or groups(cfg), args.count, args.replay)
        client.close()
        return 0
    registry = CollectorRegistry()
    observer = PrometheusEvents(registry, args.consumer)
    streams = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)
    dead = [dead_letter_stream(g) for g in groups(cfg)]
    registry.register(StreamCollector(client, streams, dead))
    start_http_server(args.metrics_port, args.metrics_host, registry=registry)
    worker: EventProcessor | LakeWriter
    if args.command == "process":
        artefacts = cfg.serving.artefacts_dir
        catalogue = read_catalogue(artefacts) if (artefacts / "manifest.json").is_file() else None
        worker = EventProcessor(
            client, cfg, catalogue=catalogue, consumer=args.consumer, observer=observer
        )
    else:
        worker = LakeWriter(client, cfg, args.out, consumer=args.consumer, observer=observer)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.run(stop)
    client.close()
    return 0


def groups(cfg: Config) -> list[str]:
    """Every group that dead-letters: the processor's, the lake writer's, cold start's."""
    e = cfg.events
    return [e.processor_group, e.lake_group, e.coldstart_group]


def show_dead_letters(client: Client, names: list[str], count: int, replay: bool) -> None:
    """One JSON line per dead letter (oldest first); with ``replay``, append those back onto
    their source streams and delete them from the dead-letter stream."""
    for group in names:
        letters = dead_letters.read(client, group, count)
        for d in letters:
            print(json.dumps({"group": group, "id": d.id, "source": d.source,
                              "source_id": d.source_id, "reason": d.reason,
                              "consumer": d.consumer, "error": d.error,
                              "fields": d.fields}))  # fmt: skip
        if replay:
            print(f"replayed {dead_letters.replay(client, letters)} of {group}'s dead letters")


if __name__ == "__main__":
    raise SystemExit(main())
