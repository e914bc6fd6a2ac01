"""Traffic routers by the CRD's ``trafficRouter.type``: adding one = a module + a line here."""

from __future__ import annotations

from collections.abc import Callable

from vidrec.rollout.routers.base import RouteTarget, TrafficRouter, check_weights
from vidrec.rollout.routers.gateway_api import GatewayAPIRouter
from vidrec.rollout.routers.gateway_table import GatewayTableConfigMapRouter, GatewayTableRouter
from vidrec.rollout.routers.kserve import KServeRouter
from vidrec.rollout.routers.nop import NopRouter

ROUTERS: dict[str, Callable[[RouteTarget], TrafficRouter]] = {
    "gateway-table": GatewayTableRouter,
    "gateway-table-configmap": GatewayTableConfigMapRouter,
    "kserve": KServeRouter,
    "gateway-api": GatewayAPIRouter,
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
    "check_weights",
]
