"""Traffic routers by the CRD's ``trafficRouter.type``: adding one = a module + a line here."""

from __future__ import annotations

from collections.abc import Callable

from vidrec.rollout.routers.base import RouteTarget, TrafficRouter, check_weights
from vidrec.rollout.routers.gateway_api import GatewayAPIRouter
from vidrec.rollout.routers.gateway_table import GatewayTableConfigMapRouter, GatewayTableRouter
from vidrec.rollout.routers.kserve import KServeRouter
from vidrec.rollout.routers.nop import NopRouter
from vidrec.rollout.routers.upstream import UpstreamSplit, with_labels

ROUTERS: dict[str, Callable[[RouteTarget], TrafficRouter]] = {
    "gateway-table": GatewayTableRouter,
    "gateway-table-configmap": GatewayTableConfigMapRouter,
    "kserve": with_labels(KServeRouter),  # the split is upstream: serving labels by version
    "gateway-api": with_labels(GatewayAPIRouter),
    "nop": NopRouter,
}

__all__ = [
    "ROUTERS",
    "GatewayAPIRouter",
    "GatewayTableConfigMapRouter",
    "GatewayTableRouter",
    "KServeRouter",
    "NopRouter",
    "RouteTarget",
    "TrafficRouter",
    "UpstreamSplit",
    "check_weights",
]
