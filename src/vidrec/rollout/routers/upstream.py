"""Routers whose split happens between serving and Triton (KServe, Gateway API), with labels.

Under these routers serving cannot choose a variant: KServe's revisions or the Gateway pick
the replica that answers. What serving can see is the model version Triton reports having
run, so besides moving the upstream weights the operator publishes a routing table with
``split: upstream`` — the two variants, their Triton versions (``params.stableModelVersion``
/ ``candidateModelVersion`` when the versions are storage URIs) and the weights, mirrored —
to the store serving reads (the Redis routing key, or the ConfigMap named by
``params.labelsConfigMap``). Serving then asks Triton for no particular version and labels
each request with the variant whose version answered, so the analysis sees candidate data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from vidrec.contracts.routing import UPSTREAM_SPLIT
from vidrec.rollout.routers.base import RouteTarget, TrafficRouter
from vidrec.rollout.routers.gateway_table import (
    GatewayTableConfigMapRouter,
    GatewayTableRouter,
    _TableRouter,
)


def label_table(target: RouteTarget) -> _TableRouter:
    """The table serving labels requests from, in the store it reads."""
    table: _TableRouter
    if target.labels_configmap:
        table = GatewayTableConfigMapRouter(
            dataclasses.replace(target, name=target.labels_configmap)
        )
    else:
        table = GatewayTableRouter(target)
    table.split = UPSTREAM_SPLIT
    return table


class UpstreamSplit:
    """``inner`` moves the traffic; ``labels`` mirrors its weights for serving's labels."""

    def __init__(self, inner: TrafficRouter, labels: _TableRouter) -> None:
        self.inner, self.labels = inner, labels

    def reconcile(self) -> None:
        self.inner.reconcile()
        self.labels.set_weights(*self.inner.get_weights())

    def set_weights(self, stable: int, candidate: int) -> None:
        self.inner.set_weights(stable, candidate)
        self.labels.set_weights(stable, candidate)

    def get_weights(self) -> tuple[int, int]:
        return self.inner.get_weights()  # the upstream object is the truth

    def finalize(self) -> None:
        promoted = self.inner.get_weights()[1] == 100
        self.inner.finalize()
        self.labels.set_weights(*((0, 100) if promoted else (100, 0)))
        self.labels.finalize()


def with_labels(
    make: Callable[[RouteTarget], TrafficRouter],
) -> Callable[[RouteTarget], TrafficRouter]:
    """A registry entry: the router ``make`` builds, publishing serving's labels beside it."""

    def build(target: RouteTarget) -> TrafficRouter:
        return UpstreamSplit(make(target), label_table(target))

    return build
