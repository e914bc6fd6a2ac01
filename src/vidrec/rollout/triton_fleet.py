"""Model versions on every Triton replica, not on whichever pod a Service happens to pick.

Loading through ``http://<release>-triton:8000`` reaches one pod per request, so with more
than one replica only some of them would hold the candidate. :class:`TritonFleet` reads the
Service's EndpointSlices (``discovery.k8s.io/v1``, label ``kubernetes.io/service-name``, the
port named ``http``) on every call, so the fleet is re-discovered each operator tick, and
drives one :class:`~vidrec.rollout.triton_control.TritonModels` per ready endpoint:

- ``ready(v)``: every ready endpoint serves ``v``; no ready endpoint at all is *not* ready.
- ``ensure_loaded(v)``: loads ``v`` where it is missing, so a pod that joined mid-rollout
  gets the candidate on the next tick (the engine re-issues the load while not ready).
- ``unload(v)``: on every endpoint still serving ``v``.

Faults: an endpoint that does not answer (connect error, timeout) raises
:class:`EndpointUnreachable`, a ``ConnectionError``, which the operator turns into a
``DependencyError``: the tick writes nothing and is retried, because a pod that stops
answering is normally dropped from the slice by its readiness probe within seconds. A load
Triton refuses stays a :class:`~vidrec.rollout.triton_control.ModelLoadError` (e.g. the
version directory is missing from that pod's repository copy) -- but only after every other
endpoint has been tried, so one bad pod does not keep the candidate off the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from vidrec.rollout.triton_control import ModelLoadError, TritonModels

if TYPE_CHECKING:
    from vidrec.rollout.operator import Models, OperatorSettings

SERVICE_LABEL = "kubernetes.io/service-name"
PORT_NAME = "http"
SETTING = "VIDREC_ROLLOUT__TRITON_SERVICE"
_T = TypeVar("_T")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class EndpointUnreachable(ConnectionError):
    """An endpoint did not answer, or none is ready to load on: retry the tick later."""


def parse_service(text: str, default_namespace: str = "") -> tuple[str, str]:
    """``[namespace/]name`` → (namespace, name); a bare name is in ``default_namespace``."""
    namespace, _, name = text.strip().rpartition("/")
    namespace = namespace or default_namespace
    for part in (name, namespace) if namespace else (name,):
        if not _DNS_LABEL.match(part):
            raise ValueError(f"{SETTING}: {text!r} is not [namespace/]service-name")
    return namespace, name


def endpoint_urls(slices: Iterable[Mapping[str, Any]], port_name: str = PORT_NAME) -> list[str]:
    """``http://addr:port`` of each ready endpoint in the slices (sorted, no duplicates).

    Ports are per slice, so a slice without ``port_name`` contributes nothing. ``ready``
    unset counts as ready (the API's "unknown"); terminating endpoints are never ready.
    """
    urls: set[str] = set()
    for item in slices:
        ports = [p.get("port") for p in item.get("ports") or () if p.get("name") == port_name]
        if not ports or ports[0] is None:
            continue
        ipv6 = item.get("addressType") == "IPv6"
        for endpoint in item.get("endpoints") or ():
            addresses = endpoint.get("addresses") or ()
            if not addresses or (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            host = f"[{addresses[0]}]" if ipv6 else addresses[0]
            urls.add(f"http://{host}:{int(ports[0])}")
    return sorted(urls)


class TritonFleet:
    """The ``Models`` protocol over every ready endpoint of one Triton Service."""

    def __init__(
        self,
        service: str,
        namespace: str,
        model: str,
        *,
        api: Any = None,
        port_name: str = PORT_NAME,
        timeout_s: float = 120.0,
    ) -> None:
        if not model:
            raise ValueError("model: must be a non-empty model name")
        self.namespace, self.service = parse_service(service, namespace)
        if not self.namespace:
            raise ValueError(f"{SETTING}: no namespace for service {service!r}")
        self.model, self.port_name, self.timeout_s = model, port_name, timeout_s
        self._api = api  # a DiscoveryV1Api; None → built on first use
        self._members: dict[str, TritonModels] = {}

    @property
    def api(self) -> Any:
        """Built on first use, so the operator can build deps before it can reach the API."""
        if self._api is None:
            from kubernetes import client

            from vidrec.rollout.routers.base import kube_api_client

            self._api = client.DiscoveryV1Api(kube_api_client())
        return self._api

    def endpoints(self) -> list[str]:
        """The ready endpoints now, from the API server; clients of departed ones are closed."""
        response = self.api.list_namespaced_endpoint_slice(
            self.namespace,
            label_selector=f"{SERVICE_LABEL}={self.service}",
            _preload_content=False,
        )
        items = [  # the selector again here: another Service's pods must never be loaded on
            item
            for item in json.loads(response.data).get("items") or ()
            if ((item.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL) == self.service
        ]
        urls = endpoint_urls(items, self.port_name)
        for gone in set(self._members) - set(urls):
            self._members.pop(gone).close()
        for url in urls:
            if url not in self._members:
                self._members[url] = TritonModels(url, self.model, timeout_s=self.timeout_s)
        return urls

    def ready(self, version: int) -> bool:
        urls = self.endpoints()
        return bool(urls) and all(self._call(u, lambda m: m.ready(version)) for u in urls)

    def ensure_loaded(self, version: int) -> None:
        urls = self.endpoints()
        if not urls:
            raise EndpointUnreachable(
                f"{self.namespace}/{self.service}: no ready Triton endpoint to load "
                f"{self.model} version {version} on"
            )
        self._each(urls, f"load {self.model}:{version}", lambda m: m.ensure_loaded(version))

    def unload(self, version: int) -> None:
        """Unload where ``version`` serves; with no endpoint there is nothing to unload."""

        def one(member: TritonModels) -> None:
            if member.ready(version):  # a reload with the same versions would still cost
                member.unload(version)

        self._each(self.endpoints(), f"unload {self.model}:{version}", one)

    def close(self) -> None:
        for member in self._members.values():
            member.close()
        self._members.clear()

    def _call(self, url: str, fn: Callable[[TritonModels], _T]) -> _T:
        try:
            return fn(self._members[url])
        except httpx.TransportError as exc:
            raise EndpointUnreachable(f"Triton endpoint {url}: {exc!r}") from exc

    def _each(self, urls: list[str], what: str, fn: Callable[[TritonModels], object]) -> None:
        """``fn`` on every endpoint, then one error naming each that failed. A refusal
        outranks unreachability: retrying the tick will not make it go away."""
        refused: list[str] = []
        unreachable: list[str] = []
        for url in urls:
            try:
                self._call(url, fn)
            except ModelLoadError as exc:
                refused.append(f"{url}: {exc}")
            except EndpointUnreachable as exc:
                unreachable.append(str(exc))
        if refused:
            failed = "; ".join(refused + unreachable)
            raise ModelLoadError(f"{what}: failed on {len(refused)}/{len(urls)}: {failed}")
        if unreachable:
            raise EndpointUnreachable(f"{what}: " + "; ".join(unreachable))


def models_for(settings: OperatorSettings, model: str, namespace: str) -> Models:
    """What the operator loads versions through: every replica of ``triton_service``, else
    the one ``triton_url``, else nothing (versions managed elsewhere)."""
    from vidrec.rollout.operator import ExternalModels

    if settings.triton_service:
        return TritonFleet(settings.triton_service, namespace, model)
    if settings.triton_url:
        return TritonModels(settings.triton_url, model)
    return ExternalModels()
