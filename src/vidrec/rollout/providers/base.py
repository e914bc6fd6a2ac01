"""The metric provider interface: one query → one float, and a reachability check.

As in Flagger, a provider only fetches a number; the analysis applies thresholds. "The query
returned nothing" and "it returned several series" are distinct errors, because the analysis
treats the first as INCONCLUSIVE (wait) and the second as a mistake in the template.
"""

from __future__ import annotations

from typing import Protocol


class ProviderError(RuntimeError):
    """The backend could not answer (unreachable, HTTP error, bad response)."""


class NoData(ProviderError):
    """The query ran but returned no value (no series yet, or NaN)."""


class ManyValues(ProviderError):
    """The query returned several series where one number was expected."""


class MetricProvider(Protocol):
    def query(self, promql: str) -> float:
        """The query's single value; raises NoData, ManyValues or ProviderError."""
        ...

    def is_online(self) -> bool:
        """Whether the backend answers at all (checked before a rollout starts)."""
        ...
