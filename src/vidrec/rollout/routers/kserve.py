"""KServe InferenceService canary (Knative/serverless mode) through ``CustomObjectsApi``.

KServe splits traffic between the last rolled-out revision and the latest one by
``spec.predictor.canaryTrafficPercent``; a new revision appears when the predictor's
``model.storageUri`` changes. So ``reconcile`` points the predictor at the candidate URI with
0% canary, ``set_weights`` patches ``canaryTrafficPercent``, and ``get_weights`` reads the
live split from ``status.components.predictor.traffic`` (the revision marked
``latestRevision`` is the candidate). ``finalize`` drops ``canaryTrafficPercent`` so KServe
promotes the latest revision, or, after a rollback, puts the stable URI back.

Standard (raw) mode does not honour ``canaryTrafficPercent``; there KServe routes through a
Gateway API HTTPRoute, which the ``gateway-api`` router weights. No ``kserve`` import: the
SDK cannot share a process with ``tritonclient.grpc`` (kserve/kserve#3099).
"""

from __future__ import annotations

from typing import Any

from vidrec.rollout.routers.base import RouteTarget, check_weights

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class KServeRouter:
    def __init__(self, target: RouteTarget, *, api: Any = None) -> None:
        self.target = target
        if api is None:
            from kubernetes import client, config

            config.load_config()
            api = client.CustomObjectsApi()
        self.api = api

    def _get(self) -> dict[str, Any]:
        isvc: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.target.namespace, PLURAL, self.target.object_name
        )
        return isvc

    def _patch_predictor(self, predictor: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.target.namespace,
            PLURAL,
            self.target.object_name,
            {"spec": {"predictor": predictor}},
        )

    def _storage_uri(self, isvc: dict[str, Any]) -> str | None:
        model = isvc.get("spec", {}).get("predictor", {}).get("model", {})
        uri: str | None = model.get("storageUri")
        return uri

    def reconcile(self) -> None:
        if self._storage_uri(self._get()) != self.target.candidate:
            self._patch_predictor(
                {"canaryTrafficPercent": 0, "model": {"storageUri": self.target.candidate}}
            )

    def set_weights(self, stable: int, candidate: int) -> None:
        check_weights(stable, candidate)
        self._patch_predictor({"canaryTrafficPercent": candidate})

    def get_weights(self) -> tuple[int, int]:
        isvc = self._get()
        status = isvc.get("status", {}).get("components", {}).get("predictor", {})
        traffic = status.get("traffic") or []
        if len(traffic) > 1:  # two revisions serving: the live split
            latest = sum(int(t.get("percent", 0)) for t in traffic if t.get("latestRevision"))
            return 100 - latest, latest
        percent = isvc.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
        if percent is not None:
            return 100 - int(percent), int(percent)
        on_candidate = self._storage_uri(isvc) == self.target.candidate
        return (0, 100) if on_candidate else (100, 0)

    def finalize(self) -> None:
        if self.get_weights()[1] == 100:
            self._patch_predictor({"canaryTrafficPercent": None})
        else:
            self._patch_predictor(
                {"canaryTrafficPercent": None, "model": {"storageUri": self.target.stable}}
            )
