"""The traffic router interface (Flagger's four methods) and what a router points at.

Weights are absolute percentages (stable + candidate = 100) and are read back from the live
object on every tick, so a hand edit or a lost write shows up instead of being assumed away.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RouteTarget:
    """The rollout's names as a router needs them (from the ModelRollout spec)."""

    model: str  # the served model (Triton model name, InferenceService name by default)
    stable: str  # stable version: a Triton version number or a storage URI
    candidate: str  # candidate version, same forms
    namespace: str = "default"
    name: str = ""  # the object the router edits (ConfigMap, InferenceService, HTTPRoute)
    stable_backend: str = ""  # Gateway API: the stable Service (default <model>-stable)
    candidate_backend: str = ""  # Gateway API: the candidate Service (default <model>-canary)
    mode: str = ""  # KServe: "standard" or "knative"; empty = the InferenceService's annotation
    # The Triton model versions inside the stable / candidate repositories (0 = not given;
    # equal to stable / candidate when those are version numbers). Serving labels requests
    # by the version Triton reports, so an upstream split needs them to attribute traffic.
    stable_model_version: int = 0
    candidate_model_version: int = 0
    labels_configmap: str = ""  # upstream split: where serving reads the labels ("" = Redis)

    @property
    def object_name(self) -> str:
        return self.name or self.model

    def version_number(self, which: str) -> int:
        """``stable``/``candidate`` as a Triton version number (routers that need one)."""
        raw = getattr(self, which)
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{which}: must be a Triton model version >= 1, got {raw!r}")
        return int(raw)


class TrafficRouter(Protocol):
    def reconcile(self) -> None:
        """Create or adopt the routing object so both versions are addressable."""
        ...

    def set_weights(self, stable: int, candidate: int) -> None:
        """Route ``stable``% / ``candidate``% (absolute, summing to 100)."""
        ...

    def get_weights(self) -> tuple[int, int]:
        """(stable, candidate) percentages as the live object says now."""
        ...

    def finalize(self) -> None:
        """Leave one version serving: the candidate if it holds 100%, else the stable."""
        ...


def check_weights(stable: int, candidate: int) -> None:
    """Reject weights that are not two ints in 0..100 summing to 100 (naming the field)."""
    for name, value in (("stable", stable), ("candidate", candidate)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ValueError(f"{name} weight: must be an int in 0..100, got {value!r}")
    if stable + candidate != 100:
        raise ValueError(f"weights: stable + candidate must be 100, got {stable} + {candidate}")


def kube_api_client() -> Any:
    """A Kubernetes ApiClient: ``$KUBECONFIG`` as set *now* (the kubernetes package fixes its
    default path at import), else the in-cluster service account, else ``~/.kube/config``."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if path := os.environ.get("KUBECONFIG"):
        return config.new_client_from_config(config_file=path)
    try:
        config.load_incluster_config()
    except ConfigException:
        return config.new_client_from_config()
    return client.ApiClient()
