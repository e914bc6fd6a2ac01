"""Load and unload one Triton model version at a time (explicit model control, HTTP API).

The ranker repository says ``version_policy: all``, so a plain load brings up every version
directory present. Triton's load request takes a ``config`` override that replaces
config.pbtxt wholesale (a partial override is not merged: measured on Triton 2.51), so a
single version is added or dropped by re-loading the model with its *live* config
(``GET /v2/models/<m>/config``) and ``version_policy: specific`` naming the versions wanted.
Versions that stay are kept serving across that reload. When the model is not loaded at
all, a plain load comes first (the repository's own policy).
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class ModelLoadError(RuntimeError):
    """Triton refused a load or unload; the message carries Triton's reason."""


class TritonModels:
    def __init__(
        self,
        http_url: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not http_url.startswith(("http://", "https://")):
            raise ValueError(f"http_url: must be an http(s) URL, got {http_url!r}")
        if not model:
            raise ValueError("model: must be a non-empty model name")
        self.model = model
        self._client = httpx.Client(
            base_url=http_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    def ready(self, version: int) -> bool:
        response = self._client.get(f"/v2/models/{self.model}/versions/{_check(version)}/ready")
        return response.status_code == 200

    def ready_versions(self) -> set[int]:
        """Versions Triton reports READY in its repository index."""
        response = self._client.post("/v2/repository/index", json={})
        if response.status_code != 200:
            raise ModelLoadError(f"repository index: HTTP {response.status_code} {response.text}")
        return {
            int(entry["version"])
            for entry in response.json()
            if entry.get("name") == self.model and entry.get("state") == "READY"
        }

    def ensure_loaded(self, version: int) -> None:
        """Make ``version`` ready, keeping the versions already serving."""
        _check(version)
        if self.ready(version):
            return
        if not self.ready_versions():
            self._load(None)
            if self.ready(version):
                return
        self._load(self.ready_versions() | {version})
        if not self.ready(version):
            raise ModelLoadError(f"{self.model} version {version}: loaded but not ready")

    def unload(self, version: int) -> None:
        """Stop serving ``version``; the model is unloaded when it was the last one."""
        _check(version)
        keep = self.ready_versions() - {version}
        if keep:
            self._load(keep)
        else:
            self._post(f"/v2/repository/models/{self.model}/unload", {})

    def _load(self, versions: set[int] | None) -> None:
        body: dict[str, Any] = {}
        if versions is not None:
            config = self._live_config()
            config["version_policy"] = {"specific": {"versions": sorted(versions)}}
            body = {"parameters": {"config": json.dumps(config)}}
        self._post(f"/v2/repository/models/{self.model}/load", body)

    def _live_config(self) -> dict[str, Any]:
        response = self._client.get(f"/v2/models/{self.model}/config")
        if response.status_code != 200:
            raise ModelLoadError(
                f"{self.model} config: HTTP {response.status_code} {response.text}"
            )
        config: dict[str, Any] = response.json()
        return config

    def _post(self, path: str, body: dict[str, Any]) -> None:
        response = self._client.post(path, json=body)
        if response.status_code != 200:
            raise ModelLoadError(f"{path}: HTTP {response.status_code} {response.text.strip()}")

    def close(self) -> None:
        self._client.close()


def _check(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version: must be a Triton model version >= 1, got {version!r}")
    return version
