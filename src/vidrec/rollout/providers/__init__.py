"""Metric providers by the CRD's ``provider.type``: adding one = a module + a line here."""

from __future__ import annotations

from vidrec.rollout.providers.base import ManyValues, MetricProvider, NoData, ProviderError
from vidrec.rollout.providers.prometheus import PrometheusProvider
from vidrec.rollout.providers.webhook import WebhookProvider

PROVIDERS: dict[str, type[MetricProvider]] = {
    "prometheus": PrometheusProvider,
    "webhook": WebhookProvider,
}

__all__ = [
    "PROVIDERS",
    "ManyValues",
    "MetricProvider",
    "NoData",
    "PrometheusProvider",
    "ProviderError",
    "WebhookProvider",
]
