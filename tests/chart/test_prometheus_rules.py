"""The chart's PrometheusRule: `promtool check rules`, and `promtool test rules` unit tests
that make every alert fire on bad series and stay silent on healthy ones."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import PROMTOOL, REPO, find, render_with, rendered

ALERTS = (
    "VidrecLatencyP99High",
    "VidrecErrorRatioHigh",
    "VidrecFeatureLagHigh",
    "VidrecFallbackRateHigh",
)


def _groups(docs: Any = None) -> list[dict[str, Any]]:
    rule = find(docs or rendered("default"), "PrometheusRule", "vidrec-slo")
    return list(rule["spec"]["groups"])


def _series(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"series": s, "values": v} for s, v in values.items()]


def _hist(metric: str, labels: str, counts: dict[str, int]) -> dict[str, str]:
    """Cumulative bucket series growing by ``counts[le]`` per minute for 20 minutes."""
    sep = "," if labels else ""
    return {f'{metric}_bucket{{{labels}{sep}le="{le}"}}': f"0+{n}x20" for le, n in counts.items()}


DEGRADED = 'vidrec_degraded_total{surface="home",stage="score/triton_ranker",reason="timeout"}'

# For each alert: (bad series, healthy series). One minute per sample.
CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "VidrecLatencyP99High": (
        _hist(
            "vidrec_request_seconds",
            'endpoint="home",variant="stable"',
            {"0.05": 0, "0.1": 0, "0.3": 60, "+Inf": 60},
        ),
        _hist(
            "vidrec_request_seconds",
            'endpoint="home",variant="stable"',
            {"0.05": 60, "0.1": 60, "0.3": 60, "+Inf": 60},
        ),
    ),
    "VidrecErrorRatioHigh": (
        {
            'vidrec_requests_total{endpoint="home",variant="stable",code="200"}': "0+100x20",
            'vidrec_requests_total{endpoint="home",variant="stable",code="503"}': "0+10x20",
        },
        {
            'vidrec_requests_total{endpoint="home",variant="stable",code="200"}': "0+100x20",
            'vidrec_requests_total{endpoint="home",variant="none",code="400"}': "0+10x20",
        },
    ),
    "VidrecFeatureLagHigh": (
        _hist("vidrec_event_to_feature_lag_seconds", "", {"1": 0, "5": 0, "10": 30, "+Inf": 30}),
        _hist("vidrec_event_to_feature_lag_seconds", "", {"1": 30, "5": 30, "10": 30, "+Inf": 30}),
    ),
    "VidrecFallbackRateHigh": (
        {
            DEGRADED: "0+20x20",
            'vidrec_requests_total{endpoint="home",variant="stable",code="200"}': "0+100x20",
        },
        {
            DEGRADED: "0+1x20",
            'vidrec_requests_total{endpoint="home",variant="stable",code="200"}': "0+100x20",
        },
    ),
}


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "vidrec-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": _groups()}))
    return path


def test_every_slo_alert_is_in_the_rule() -> None:
    names = [r["alert"] for g in _groups() for r in g["rules"]]
    assert sorted(names) == sorted(ALERTS)


def test_alerts_use_metrics_the_code_exports() -> None:
    src = "\n".join(p.read_text() for p in (REPO / "src" / "vidrec").rglob("*.py"))
    for group in _groups():
        for rule in group["rules"]:
            for metric in set(re.findall(r"\b(vidrec_[a-z_]+)", rule["expr"])):
                base = re.sub(r"_(bucket|total|sum|count)$", "", metric)
                assert f'"{base}"' in src, f"{rule['alert']}: {metric} is not exported by vidrec"


def test_promtool_check_rules(rules_file: Path) -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout + result.stderr


def _unit_tests(rules: Path) -> dict[str, Any]:
    tests = []
    for alert, (bad, healthy) in CASES.items():
        tests.append(
            {
                "interval": "1m",
                "input_series": _series(bad),
                "alert_rule_test": [
                    {
                        "eval_time": "3m",
                        "alertname": alert,
                        "exp_alerts": [],
                    },  # pending, not firing
                    {
                        "eval_time": "15m",
                        "alertname": alert,
                        "exp_alerts": [
                            {"exp_labels": _labels(alert), "exp_annotations": _annotations(alert)}
                        ],
                    },
                ],
            }
        )
        tests.append(
            {
                "interval": "1m",
                "input_series": _series(healthy),
                "alert_rule_test": [
                    {"eval_time": "15m", "alertname": a, "exp_alerts": []} for a in ALERTS
                ],
            }
        )
    return {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}


# The value each bad case fires with, as the description renders it ($value humanized).
FIRED_VALUE = {
    "VidrecLatencyP99High": "298ms",  # all requests in (0.1, 0.3]: p99 = 0.1 + 0.99 * 0.2
    "VidrecErrorRatioHigh": "9.091%",  # 10 / 110
    "VidrecFeatureLagHigh": "9.95s",
    "VidrecFallbackRateHigh": "20%",
}


def _labels(alert: str) -> dict[str, str]:
    rule = next(r for g in _groups() for r in g["rules"] if r["alert"] == alert)
    return dict(rule["labels"])


def _annotations(alert: str) -> dict[str, str]:
    rule = next(r for g in _groups() for r in g["rules"] if r["alert"] == alert)
    ann = dict(rule["annotations"])
    ann["description"] = re.sub(r"\{\{ \$value[^}]*\}\}", FIRED_VALUE[alert], ann["description"])
    return ann


def test_promtool_unit_tests_fire_each_alert(rules_file: Path, tmp_path: Path) -> None:
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(_unit_tests(rules_file), sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_unit_tests_fail_when_the_threshold_moves(tmp_path: Path) -> None:
    """The unit tests really evaluate the thresholds from values: loosen the latency SLO to
    1 s and the 'bad' latency series no longer fires, so the suite fails."""
    docs = render_with("monitoring.prometheusRule.slo.latencyP99Seconds=1")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _groups(docs)}))
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(_unit_tests(rules), sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "VidrecLatencyP99High" in result.stdout + result.stderr
