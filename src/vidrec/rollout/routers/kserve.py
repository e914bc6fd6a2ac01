"""KServe InferenceService canaries, in both of KServe's deployment modes, through its SDK.

* **Knative (Serverless)**: KServe splits traffic between the last rolled-out revision and the
  latest one by ``spec.predictor.canaryTrafficPercent``; a new revision appears when the
  predictor's ``model.storageUri`` changes. ``reconcile`` points the predictor at the
  candidate with 0%, ``set_weights`` patches the percentage, ``get_weights`` reads the live
  split from ``status.components.predictor.traffic``, and ``finalize`` drops the field so
  KServe promotes the latest revision — or, after a rollback, puts the stable URI back.
* **Standard (RawDeployment)**: ``canaryTrafficPercent`` is ignored; v0.20+ has
  ``spec.canary[]``, each entry a whole predictor (its ``name`` becomes the Deployment
  ``{isvc}-{name}-predictor``) with a ``trafficPercent``. ``reconcile`` adds our entry — the
  stable predictor with the candidate's URI — at 0% (a dark launch), ``set_weights`` sets its
  percentage, ``get_weights`` prefers ``status.canaryStatuses``, and ``finalize`` promotes the
  way KServe documents it (the predictor takes the canary's name and URI, so the canary's
  pods become the predictor's without a restart) or simply drops the entry after a rollback.
  The entry is written so that KServe v0.20's CRD schema and webhook accept it (both checked
  offline against the vendored upstream CRD by ``tests/unit/test_router_schemas.py``): the
  canary's name starts with a letter, its ``model`` carries the container ``name`` the CRD
  requires there (KServe's own ``kserve-container``), and it drops the autoscaling fields the
  webhook forbids on a canary (it runs fixed replicas).

The mode comes from ``trafficRouter.params.mode`` or else the InferenceService's
``serving.kserve.io/deploymentMode`` annotation. Requests go through ``kserve.KServeClient``
(its kube config loading and API client); the SDK is imported only when a router is built
without an injected API, because it cannot share a process with ``tritonclient.grpc``
(kserve/kserve#3099) — the operator never loads Triton's gRPC client.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from typing import Any

from vidrec.rollout.routers.base import RouteTarget, check_weights

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
STANDARD_MODES = {"standard", "rawdeployment"}
KNATIVE_MODES = {"knative", "serverless"}


class KServeSdkObjects:
    """The two custom-object calls the router makes, done by ``kserve.KServeClient``.

    Reads use ``KServeClient.get``; writes use its API client with a JSON merge patch,
    because ``KServeClient.patch`` takes a typed object, which cannot say "delete this key"
    (None fields are dropped when serialised) — exactly what promotion needs."""

    def __init__(self, kserve_client: Any = None) -> None:
        if kserve_client is None:
            from kserve import KServeClient  # operator-side only: see the module docstring

            # KUBECONFIG read now: kubernetes fixes its default path at import time.
            kserve_client = KServeClient(config_file=os.environ.get("KUBECONFIG"))
        self.client = kserve_client

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        isvc: dict[str, Any] = self.client.get(name, namespace=namespace, version=version)
        return isvc

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> dict[str, Any]:
        patched: dict[str, Any] = self.client.api_instance.patch_namespaced_custom_object(
            group, version, namespace, plural, name, body
        )
        return patched


# The container name KServe gives the model's container (constants.InferenceServiceContainerName).
MODEL_CONTAINER = "kserve-container"
# Predictor fields KServe's webhook rejects on a canary, which runs fixed replicas
# (validateCanarySpecs in pkg/apis/serving/v1beta1/inference_service_validation.go, v0.20).
CANARY_FORBIDDEN = ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling")


def canary_name(candidate: str) -> str:
    """The canary predictor's name, stable for one candidate version: KServe's CRD pattern
    ``^[a-z]([-a-z0-9]*[a-z0-9])?$``, so a URI whose last segment starts with a digit (``.../4``)
    gets a ``v`` in front; names that already fit are unchanged (in-flight rollouts keep theirs)."""
    if candidate.isdigit():
        return f"v{candidate}"
    tail = re.sub(r"[^a-z0-9-]+", "-", candidate.lower().rstrip("/").rsplit("/", 1)[-1])
    digest = hashlib.sha1(candidate.encode()).hexdigest()[:8]
    name = f"{tail.strip('-')[:40]}-{digest}".strip("-")
    return name if name[0].isalpha() else f"v{name}"


class KServeRouter:
    def __init__(self, target: RouteTarget, *, api: Any = None) -> None:
        self.target = target
        self.api = api if api is not None else KServeSdkObjects()
        self.canary = canary_name(target.candidate)

    # -- the object ---------------------------------------------------------------------
    def _get(self) -> dict[str, Any]:
        isvc: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.target.namespace, PLURAL, self.target.object_name
        )
        return isvc

    def _patch_spec(self, spec: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.target.namespace, PLURAL, self.target.object_name, {"spec": spec}
        )

    def standard(self, isvc: dict[str, Any]) -> bool:
        """Standard (raw) mode? ``params.mode`` wins, else the object's annotation."""
        mode = self.target.mode.lower()
        if not mode:
            annotations = isvc.get("metadata", {}).get("annotations") or {}
            mode = str(annotations.get(MODE_ANNOTATION, "Serverless")).lower()
        if mode not in STANDARD_MODES | KNATIVE_MODES:
            known = sorted(STANDARD_MODES | KNATIVE_MODES)
            raise ValueError(f"trafficRouter.params.mode: unknown KServe mode {mode!r} {known}")
        return mode in STANDARD_MODES

    @staticmethod
    def _storage_uri(predictor: dict[str, Any]) -> str | None:
        uri: str | None = (predictor.get("model") or {}).get("storageUri")
        return uri

    def _canaries(self, isvc: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Every canary entry but ours, and ours (None when absent)."""
        others, ours = [], None
        for entry in isvc.get("spec", {}).get("canary") or []:
            if (entry.get("predictor") or {}).get("name") == self.canary:
                ours = entry
            else:
                others.append(entry)
        return others, ours

    # -- the TrafficRouter interface ----------------------------------------------------
    def reconcile(self) -> None:
        isvc = self._get()
        predictor = isvc.get("spec", {}).get("predictor", {})
        if not self.standard(isvc):
            if self._storage_uri(predictor) != self.target.candidate:
                self._patch_spec(
                    {
                        "predictor": {
                            "canaryTrafficPercent": 0,
                            "model": {"storageUri": self.target.candidate},
                        }
                    }
                )
            return
        others, ours = self._canaries(isvc)
        if ours is None:
            self._patch_spec(
                {"canary": [*others, {"predictor": self._canary(predictor), "trafficPercent": 0}]}
            )

    def _canary(self, predictor: dict[str, Any]) -> dict[str, Any]:
        """Our canary predictor: the stable one on the candidate's URI, as KServe accepts it."""
        model = predictor.get("model") or {}
        if not (model.get("modelFormat") or {}).get("name"):
            raise ValueError(
                f"InferenceService {self.target.object_name}: spec.predictor.model.modelFormat is"
                " missing; a spec.canary[] entry must have one (KServe's CRD requires it)"
            )
        if "workerSpec" in predictor:
            raise ValueError(
                f"InferenceService {self.target.object_name}: spec.predictor.workerSpec is set;"
                " KServe does not support canaries of multi-node predictors"
            )
        candidate = copy.deepcopy(predictor)
        for key in ("canaryTrafficPercent", *CANARY_FORBIDDEN):
            candidate.pop(key, None)
        candidate["name"] = self.canary
        candidate["model"].setdefault("name", MODEL_CONTAINER)
        candidate["model"]["storageUri"] = self.target.candidate
        return candidate

    def set_weights(self, stable: int, candidate: int) -> None:
        check_weights(stable, candidate)
        isvc = self._get()
        if not self.standard(isvc):
            self._patch_spec({"predictor": {"canaryTrafficPercent": candidate}})
            return
        others, ours = self._canaries(isvc)
        if ours is None:
            raise RuntimeError(
                f"InferenceService {self.target.object_name}: canary {self.canary!r} is missing"
                " from spec.canary (edited by hand?); the next reconcile adds it back"
            )
        self._patch_spec({"canary": [*others, {**ours, "trafficPercent": candidate}]})

    def get_weights(self) -> tuple[int, int]:
        isvc = self._get()
        if self.standard(isvc):
            for status in isvc.get("status", {}).get("canaryStatuses") or []:
                if status.get("name") == self.canary and "trafficPercent" in status:
                    percent = int(status["trafficPercent"])
                    return 100 - percent, percent
            _, ours = self._canaries(isvc)
            if ours is not None:
                percent = int(ours.get("trafficPercent", 0))
                return 100 - percent, percent
            on_candidate = isvc.get("spec", {}).get("predictor", {}).get("name") == self.canary
            return (0, 100) if on_candidate else (100, 0)
        predictor = isvc.get("spec", {}).get("predictor", {})
        status = isvc.get("status", {}).get("components", {}).get("predictor", {})
        traffic = status.get("traffic") or []
        if len(traffic) > 1:  # two revisions serving: the live split
            latest = sum(int(t.get("percent", 0)) for t in traffic if t.get("latestRevision"))
            return 100 - latest, latest
        percent = predictor.get("canaryTrafficPercent")
        if percent is not None:
            return 100 - int(percent), int(percent)
        return (0, 100) if self._storage_uri(predictor) == self.target.candidate else (100, 0)

    def finalize(self) -> None:
        promoted = self.get_weights()[1] == 100
        isvc = self._get()
        if self.standard(isvc):
            others, ours = self._canaries(isvc)
            spec: dict[str, Any] = {"canary": others}
            if promoted and ours is not None:
                # KServe's documented promotion: the predictor takes the canary's name (its
                # Deployment keeps serving, no restart) and the canary entry goes.
                spec["predictor"] = {
                    "name": self.canary,
                    "model": {"storageUri": self.target.candidate},
                }
            self._patch_spec(spec)
        elif promoted:
            self._patch_spec({"predictor": {"canaryTrafficPercent": None}})
        else:
            self._patch_spec(
                {
                    "predictor": {
                        "canaryTrafficPercent": None,
                        "model": {"storageUri": self.target.stable},
                    }
                }
            )
