"""Prometheus metrics of the event consumers, on their own registry and port.

Counters and the lag histogram are fed through the :class:`EventObserver` interface; stream
lengths and group lags are read from Redis at scrape time (XLEN, XINFO GROUPS), so they
cost the consumer nothing, and any consumer's scrape reports every group: a lake writer that
is down still shows its growing lag through the processor's. A Redis fault during a scrape
drops those gauges for that scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vidrec.contracts import metrics as names
from vidrec.events.streams import Client

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class PrometheusEvents:
    """An :class:`~vidrec.events.processor.EventObserver` for one consumer."""

    def __init__(self, registry: CollectorRegistry, consumer: str) -> None:
        self._processed = Counter(
            "vidrec_events_processed", "Events consumed", ["consumer"], registry=registry
        ).labels(consumer)
        self._duplicates = Counter(
            "vidrec_events_duplicates", "Events already applied (redelivery, retry)",
            registry=registry,
        )  # fmt: skip
        self._failed = Counter(
            "vidrec_events_failed", "Dependency faults (Redis, disk)", registry=registry
        )
        self._dead = Counter(
            names.DEAD_LETTERS, "Entries set aside in the dead-letter stream, by group and reason",
            ["group", "reason"], registry=registry,
        )  # fmt: skip
        # Per-variant engagement, for the rollout's CTR and watch-time tests (Welch needs the
        # sum of squares for an exact variance). No ids in labels: variants are few.
        self._impressions = Counter(
            names.IMPRESSIONS, "Impression events by serving variant.", ["variant"],
            registry=registry,
        )  # fmt: skip
        self._clicks = Counter(
            names.CLICKS, "Click events by serving variant.", ["variant"], registry=registry
        )
        self._watch = Summary(
            names.WATCH_SECONDS, "Watch time by serving variant.", ["variant"],
            registry=registry,
        )  # fmt: skip
        self._watch_sq = Counter(
            names.WATCH_SECONDS_SQUARED, "Sum of squared watch seconds by variant.",
            ["variant"], registry=registry,
        )  # fmt: skip
        self._lag = Histogram(
            "vidrec_event_to_feature_lag_seconds", "Now minus event ts when applied",
            buckets=LAG_BUCKETS, registry=registry,
        )  # fmt: skip

    def engagement(self, variant: str, kind: str, watch_s: float) -> None:
        """One fresh event attributed to the variant that served its request."""
        if kind == "impression":
            self._impressions.labels(variant).inc()
        elif kind == "click":
            self._clicks.labels(variant).inc()
        elif kind == "watch":
            self._watch.labels(variant).observe(watch_s)
            self._watch_sq.labels(variant).inc(watch_s * watch_s)

    def processed(self, n: int) -> None:
        self._processed.inc(n)

    def duplicates(self, n: int) -> None:
        self._duplicates.inc(n)

    def failed(self, n: int) -> None:
        self._failed.inc(n)

    def dead_lettered(self, group: str, reason: str, n: int) -> None:
        self._dead.labels(group, reason).inc(n)

    def lag(self, seconds: Sequence[float]) -> None:
        for s in seconds:
            self._lag.observe(max(s, 0.0))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def undelivered(client: Client, stream: str, info: dict[str, Any]) -> int:
    """Entries after the group's last-delivered id. Redis answers ``lag`` (exact), or null
    once entries were deleted or the group started mid-stream; then entries added minus
    entries read (an upper bound), else the whole stream: never 0 for a stalled group."""
    if info.get("lag") is not None:
        return int(info["lag"])
    stream_info: dict[str, Any] = client.xinfo_stream(stream)
    added, read = stream_info.get("entries-added"), info.get("entries-read")
    if added is not None and read is not None:
        return max(int(added) - int(read), 0)
    return int(stream_info.get("length") or 0)


class StreamCollector(Collector):
    """``vidrec_stream_length{stream}``, ``vidrec_consumer_lag{group}`` and
    ``vidrec_consumer_pending{group}`` at scrape time.

    Lag is what a group has not applied: entries never delivered to it plus entries delivered
    and not acknowledged (pending). A consumer that crashes on a batch, or hangs, leaves its
    batch pending and reads nothing new, so its lag grows with every entry written; counting
    undelivered entries alone read 0 while the lake writer crash-looped on one entry.
    ``extra`` streams (the dead-letter streams) are reported by length only.
    """

    def __init__(self, client: Client, streams: Sequence[str], extra: Sequence[str] = ()) -> None:
        self.client = client
        self.streams = list(streams)
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        length = GaugeMetricFamily("vidrec_stream_length", "Entries in a stream", labels=["stream"])
        lag = GaugeMetricFamily(
            names.CONSUMER_LAG,
            "Entries a group has not applied: not yet delivered, or delivered and not acked",
            labels=["group"],
        )
        pending = GaugeMetricFamily(
            names.CONSUMER_PENDING, "Entries delivered to a group and not acked", labels=["group"]
        )
        per_group: dict[str, tuple[int, int]] = {}
        try:
            for stream in self.extra:
                length.add_metric([stream], float(self.client.xlen(stream)))
            for stream in self.streams:
                length.add_metric([stream], float(self.client.xlen(stream)))
                groups: list[dict[str, Any]] = self.client.xinfo_groups(stream)
                for info in groups:
                    name = _text(info["name"])
                    waiting, held = per_group.get(name, (0, 0))
                    waiting += undelivered(self.client, stream, info)
                    per_group[name] = (waiting, held + int(info.get("pending") or 0))
        except redis.RedisError:
            return
        for name, (waiting, held) in per_group.items():
            lag.add_metric([name], float(waiting + held))
            pending.add_metric([name], float(held))
        yield length
        yield lag
        yield pending
