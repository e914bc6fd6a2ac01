"""Prometheus metrics of the event consumers, on their own registry and port.

Counters and the lag histogram are fed through the :class:`EventObserver` interface; stream
lengths and group lags are read from Redis at scrape time (XLEN, XINFO GROUPS), so they
cost the consumer nothing. A Redis fault during a scrape drops those gauges for that scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
            "vidrec_events_failed", "Unparseable entries and dependency faults", registry=registry
        )
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

    def lag(self, seconds: Sequence[float]) -> None:
        for s in seconds:
            self._lag.observe(max(s, 0.0))


class StreamCollector(Collector):
    """``vidrec_stream_length{stream}`` and ``vidrec_consumer_lag{group}`` at scrape time."""

    def __init__(self, client: Client, streams: Sequence[str]) -> None:
        self.client = client
        self.streams = list(streams)

    def collect(self) -> Iterator[Metric]:
        length = GaugeMetricFamily("vidrec_stream_length", "Entries in a stream", labels=["stream"])
        lag = GaugeMetricFamily(
            "vidrec_consumer_lag", "Entries not yet delivered to a group", labels=["group"]
        )
        per_group: dict[str, int] = {}
        try:
            for stream in self.streams:
                length.add_metric([stream], float(self.client.xlen(stream)))
                for info in self.client.xinfo_groups(stream):
                    name = (
                        info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
                    )
                    per_group[name] = per_group.get(name, 0) + int(info.get("lag") or 0)
        except redis.RedisError:
            return
        for name, value in per_group.items():
            lag.add_metric([name], float(value))
        yield length
        yield lag
