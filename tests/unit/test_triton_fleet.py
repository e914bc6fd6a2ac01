"""EndpointSlice reading and the fleet's setting, without servers (the fleet against real
Tritons is tests/operator/test_triton_fleet.py)."""

from __future__ import annotations

from typing import Any

import pytest

from vidrec.rollout.operator import ExternalModels, OperatorSettings
from vidrec.rollout.triton_control import TritonModels
from vidrec.rollout.triton_fleet import TritonFleet, endpoint_urls, models_for, parse_service


def _slice(port: int | None, *endpoints: dict[str, Any], family: str = "IPv4") -> dict[str, Any]:
    ports = [{"name": "grpc", "port": 8001}]
    if port is not None:
        ports.append({"name": "http", "port": port})
    return {"addressType": family, "ports": ports, "endpoints": list(endpoints)}


def _ep(address: str, ready: bool | None = True) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {"addresses": [address], "conditions": conditions}


def test_ready_endpoints_take_their_slices_http_port() -> None:
    slices = [
        _slice(8000, _ep("10.0.0.2"), _ep("10.0.0.1"), _ep("10.0.0.3", ready=False)),
        _slice(9000, _ep("10.0.0.1"), _ep("10.0.0.9", ready=None)),  # unknown counts as ready
        _slice(None, _ep("10.0.0.7")),  # no port named http: nothing to call
        _slice(8000, _ep("fd00::5"), family="IPv6"),
        _slice(8000, _ep("10.0.0.2")),  # the same endpoint twice (slices overlap while moving)
    ]
    assert endpoint_urls(slices) == [
        "http://10.0.0.1:8000",
        "http://10.0.0.1:9000",
        "http://10.0.0.2:8000",
        "http://10.0.0.9:9000",
        "http://[fd00::5]:8000",
    ]
    assert endpoint_urls(slices, port_name="grpc")[0] == "http://10.0.0.1:8001"
    assert endpoint_urls([]) == []


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("vidrec-triton", "team-a", ("team-a", "vidrec-triton")),
        ("vidrec/vidrec-triton", "team-a", ("vidrec", "vidrec-triton")),
    ],
)
def test_service_name_and_namespace(text: str, default: str, expected: tuple[str, str]) -> None:
    assert parse_service(text, default) == expected


@pytest.mark.parametrize("bad", ["Triton", "ns/", "a/b/c", "http://vidrec-triton:8000", "-x"])
def test_bad_service_names_the_setting(bad: str) -> None:
    with pytest.raises(ValueError, match="VIDREC_ROLLOUT__TRITON_SERVICE"):
        OperatorSettings.from_env({"VIDREC_ROLLOUT__TRITON_SERVICE": bad})


def test_the_service_wins_over_the_url_and_neither_means_external() -> None:
    both = OperatorSettings(triton_url="http://one:8000", triton_service="vidrec/vidrec-triton")
    fleet = models_for(both, "ranker", "default")
    assert isinstance(fleet, TritonFleet)  # no API client yet: built on first use
    assert (fleet.namespace, fleet.service, fleet.model) == ("vidrec", "vidrec-triton", "ranker")
    assert isinstance(models_for(OperatorSettings(triton_url="http://one:8000"), "r", "d"),
                      TritonModels)  # fmt: skip
    assert isinstance(models_for(OperatorSettings(), "ranker", "default"), ExternalModels)
    env = {"VIDREC_ROLLOUT__TRITON_SERVICE": "vidrec/vidrec-triton"}
    assert OperatorSettings.from_env(env).triton_service == "vidrec/vidrec-triton"
