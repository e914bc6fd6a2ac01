"""kmock made to behave like a Kubernetes API server, as far as kopf and the client can tell.

:class:`KubernetesEmulator` stores objects and streams watch events, but a real API server
also: assigns ``uid``/``resourceVersion``/``generation``/``creationTimestamp``, takes the
namespace from the URL, answers a create with 201, bumps ``resourceVersion`` on every write
(kopf waits for the version its own patch returned), bumps ``generation`` on spec changes
only, and splits writes by the ``status`` subresource (a main-endpoint patch leaves status
alone, a ``/status`` patch touches nothing else). :class:`ApiServer` adds exactly that.
"""

from __future__ import annotations

import datetime
import itertools
import uuid
from typing import Any

import aiohttp.web
import attrs
import kmock
from typing_extensions import override

ROLLOUTS = "vidrec.io/v1alpha1/modelrollouts"
ROLLOUT_INFO = kmock.ResourceInfo(
    kind="ModelRollout",
    singular="modelrollout",
    namespaced=True,
    verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
    shortnames={"mro"},
    subresources={"status"},
)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """The emulator plus the metadata bookkeeping a real API server does."""

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    @override
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()
        self.resources[ROLLOUTS] = ROLLOUT_INFO

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                self._on_create(request, request.data)
            elif request.action == kmock.action.UPDATE:
                self._on_patch(request, request.data)
        if request.action == kmock.action.DELETE and request.name is not None:
            self._on_delete(request)
        response = await super()._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)
        return response

    def _key(self, request: kmock.Request) -> Any:
        return (request.resource, request.namespace, request.name)

    def _on_create(self, request: kmock.Request, body: dict[str, Any]) -> None:
        meta = body.setdefault("metadata", {})
        if request.namespace is not None:
            meta["namespace"] = request.namespace
        meta.setdefault("generateName", None)
        if meta.get("name") is None and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        meta.pop("generateName")
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(self._versions)),
            generation=1,
            creationTimestamp=_now(),
        )

    def _on_patch(self, request: kmock.Request, patch: dict[str, Any]) -> None:
        key = self._key(request)
        if key not in self.objects or self.objects[key].deleted:
            return  # the emulator answers 404
        current = self.objects[key].raw
        info = self.resources.get(request.resource) if request.resource is not None else None
        has_status = isinstance(info, kmock.ResourceInfo) and "status" in info.subresources
        if request.subresource == "status":
            for field in [k for k in patch if k not in ("status", "metadata")]:
                del patch[field]
        elif has_status:
            patch.pop("status", None)
        meta = patch.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return
        for field in ("uid", "generation", "creationTimestamp", "namespace", "name"):
            meta.pop(field, None)
        meta["resourceVersion"] = str(next(self._versions))
        if "spec" in patch and patch["spec"] != current.get("spec"):
            meta["generation"] = int(current.get("metadata", {}).get("generation", 1)) + 1

    def _on_delete(self, request: kmock.Request) -> None:
        key = self._key(request)
        if key in self.objects and not self.objects[key].deleted:
            self.objects[key].patch({"metadata": {"resourceVersion": str(next(self._versions))}})

    def stored(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object as the server holds it now, or None."""
        key = (resource, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return self.objects[key].raw
