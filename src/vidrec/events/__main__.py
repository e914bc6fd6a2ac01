"""``python -m vidrec.events process|lake``: run one consumer until SIGTERM/SIGINT.

Settings come from :func:`vidrec.config.load_config` (Redis URL and cluster flag, stream
prefix and partitions, artefacts dir for the creator lookup). On SIGTERM the loop finishes
its batch (the lake writer flushes its buffer) and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from vidrec.config import RedisConfig, load_config
from vidrec.contracts.catalogue import read_catalogue
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
    parser.add_argument("command", choices=["process", "lake"])
    parser.add_argument("--metrics-port", type=int, default=cfg.events.processor_metrics_port)
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.add_argument("--out", type=Path, help="lake directory (lake)")
    parser.add_argument("--consumer", default=default_consumer())
    args = parser.parse_args(argv)
    if args.command == "lake" and args.out is None:
        parser.error("lake needs --out DIR")
    client = connect(cfg.redis, cfg.events.block_ms)
    registry = CollectorRegistry()
    observer = PrometheusEvents(registry, args.consumer)
    streams = stream_names(cfg.serving.event_stream_prefix, cfg.serving.event_partitions)
    registry.register(StreamCollector(client, streams))
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


if __name__ == "__main__":
    raise SystemExit(main())
