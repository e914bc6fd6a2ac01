"""Gateway API: weights on an HTTPRoute's ``backendRefs`` (stable and candidate Services).

Every rule that routes to the stable Service gets the candidate Service beside it at
weight 0 (``reconcile``); ``set_weights`` writes both ``weight`` fields and ``get_weights``
reads them back from the first such rule. The whole ``spec.rules`` list is patched (a merge patch
replaces lists), so other rules and matches are kept as they were read.
"""

from __future__ import annotations

import copy
from typing import Any

from vidrec.rollout.routers.base import RouteTarget, check_weights, kube_api_client

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"


class GatewayAPIRouter:
    def __init__(self, target: RouteTarget, *, api: Any = None) -> None:
        self.target = target
        self.stable_backend = target.stable_backend or f"{target.model}-stable"
        self.candidate_backend = target.candidate_backend or f"{target.model}-canary"
        if api is None:
            from kubernetes import client

            api = client.CustomObjectsApi(kube_api_client())
        self.api = api

    def _rules(self) -> list[dict[str, Any]]:
        route: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.target.namespace, PLURAL, self.target.object_name
        )
        rules: list[dict[str, Any]] = copy.deepcopy(route.get("spec", {}).get("rules") or [])
        ours = [r for r in rules if self._ref(r, self.stable_backend) is not None]
        if not ours:
            raise ValueError(
                f"HTTPRoute {self.target.namespace}/{self.target.object_name}: no rule has "
                f"backendRef {self.stable_backend!r} (trafficRouter.params.stableBackend)"
            )
        return rules

    def _put(self, rules: list[dict[str, Any]]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.target.namespace,
            PLURAL,
            self.target.object_name,
            {"spec": {"rules": rules}},
        )

    @staticmethod
    def _ref(rule: dict[str, Any], name: str) -> dict[str, Any] | None:
        return next((b for b in rule.get("backendRefs") or [] if b.get("name") == name), None)

    def _weigh(self, rules: list[dict[str, Any]], stable: int, candidate: int) -> None:
        for rule in rules:
            stable_ref = self._ref(rule, self.stable_backend)
            if stable_ref is None:
                continue
            candidate_ref = self._ref(rule, self.candidate_backend)
            if candidate_ref is None:
                candidate_ref = {**stable_ref, "name": self.candidate_backend}
                rule["backendRefs"].append(candidate_ref)
            stable_ref["weight"], candidate_ref["weight"] = stable, candidate

    def reconcile(self) -> None:
        rules = self._rules()
        missing = [r for r in rules if self._ref(r, self.stable_backend) is not None]
        if any(self._ref(r, self.candidate_backend) is None for r in missing):
            self._weigh(rules, 100, 0)
            self._put(rules)

    def set_weights(self, stable: int, candidate: int) -> None:
        check_weights(stable, candidate)
        rules = self._rules()
        self._weigh(rules, stable, candidate)
        self._put(rules)

    def get_weights(self) -> tuple[int, int]:
        for rule in self._rules():
            stable_ref = self._ref(rule, self.stable_backend)
            if stable_ref is None:
                continue
            candidate_ref = self._ref(rule, self.candidate_backend)
            stable = int(stable_ref.get("weight", 1))  # Gateway API default weight is 1
            candidate = 0 if candidate_ref is None else int(candidate_ref.get("weight", 1))
            total = stable + candidate
            share = 100 if total == 0 else round(100 * stable / total)
            return share, 100 - share
        return 100, 0

    def finalize(self) -> None:
        """Pin the route to the winner (the candidate at 100%, else the stable)."""
        won = self.get_weights()[1] == 100
        self.set_weights(*((0, 100) if won else (100, 0)))
