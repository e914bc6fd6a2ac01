"""The operator's own Prometheus series, named after Flagger's, for dashboards and alerts.

``vidrec_rollout_phase`` is 1 for a rollout's current phase and 0 for the others, so
``vidrec_rollout_phase{phase="RolledBack"} == 1`` alerts on a rollback and a dashboard can show
every rollout's phase; ``vidrec_rollout_canary_weight`` is the candidate's share of traffic;
``vidrec_rollout_analysis_total`` counts analysis verdicts per metric. Labels are the
rollout's name and namespace only — object names, never user or video ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress

from prometheus_client import CollectorRegistry, Counter, Gauge

from vidrec.rollout.analysis import MetricResult
from vidrec.rollout.spec import Phase


class RolloutMetrics:
    """The series in their own registry: kopf may load the handlers module more than once."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.phase = Gauge(
            "vidrec_rollout_phase",
            "1 for the rollout's current phase, 0 for the others",
            ["namespace", "rollout", "phase"],
            registry=self.registry,
        )
        self.weight = Gauge(
            "vidrec_rollout_canary_weight",
            "Percentage of traffic routed to the candidate",
            ["namespace", "rollout"],
            registry=self.registry,
        )
        self.analysis = Counter(
            "vidrec_rollout_analysis",
            "Analysis runs by metric and verdict (Pass, Fail, Inconclusive)",
            ["namespace", "rollout", "metric", "verdict"],
            registry=self.registry,
        )

    def record(
        self,
        namespace: str,
        rollout: str,
        phase: str,
        weight: int,
        results: Iterable[MetricResult] = (),
    ) -> None:
        for p in Phase:
            self.phase.labels(namespace, rollout, p.value).set(1.0 if p.value == phase else 0.0)
        self.weight.labels(namespace, rollout).set(weight)
        for result in results:
            self.analysis.labels(namespace, rollout, result.metric, result.verdict.value).inc()

    def forget(self, namespace: str, rollout: str) -> None:
        """A deleted rollout's series go too, instead of reporting its last phase forever."""
        for p in Phase:
            with suppress(KeyError):
                self.phase.remove(namespace, rollout, p.value)
        with suppress(KeyError):
            self.weight.remove(namespace, rollout)
