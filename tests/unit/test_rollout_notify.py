"""Notifier factory: nothing configured, unknown or broken → NullNotifier, never an error."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from vidrec.rollout import notify
from vidrec.rollout.notify import NullNotifier, WebhookNotifier, notifier_for


class Recorder:
    def __init__(self, params: Mapping[str, str]) -> None:
        self.url = params["url"]
        self.posts: list[tuple[str, str]] = []

    def post(self, reason: str, message: str) -> None:
        self.posts.append((reason, message))


def test_null_when_nothing_is_configured() -> None:
    assert isinstance(notifier_for(None), NullNotifier)
    assert isinstance(notifier_for("carrier-pigeon"), NullNotifier)
    NullNotifier().post("RolledBack", "x")  # accepts and drops


def test_registered_notifier_is_built_and_a_broken_one_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(notify.NOTIFIERS, "recorder", Recorder)
    built = notifier_for("recorder", {"url": "http://hook"})
    assert isinstance(built, Recorder) and built.url == "http://hook"
    assert isinstance(notifier_for("recorder", {}), NullNotifier)  # missing url: KeyError


def test_webhook_posts_slack_style_json_to_a_real_server() -> None:
    received: list[dict[str, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        hook = notifier_for("slack", {"url": url, "channel": "#rollouts"})
        assert isinstance(hook, WebhookNotifier)
        hook.post("RolledBack", "prod/ranker-v4: Rolled back: ctr = 1e-9, outside min 0.01")
        hook.post("Succeeded", "prod/ranker-v5: Succeeded")
    finally:
        server.shutdown()
    assert [r["channel"] for r in received] == ["#rollouts", "#rollouts"]
    assert "*RolledBack*" in received[0]["text"] and "ranker-v4" in received[0]["text"]
    assert received[0]["text"].startswith(":rotating_light:")
    assert received[1]["text"].startswith(":arrow_forward:")
    assert hook.failures == 0


def test_webhook_failure_is_counted_never_raised() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = WebhookNotifier({"url": f"http://127.0.0.1:{port}/", "timeout_s": "0.5"})
    hook.post("RolledBack", "x")
    assert hook.failures == 1
    assert isinstance(notifier_for("webhook", {"url": "ftp://nope"}), NullNotifier)


def test_operator_settings_build_the_configured_notifier() -> None:
    from vidrec.rollout.operator import OperatorSettings

    env = {"VIDREC_ROLLOUT__NOTIFIER": "slack", "VIDREC_ROLLOUT__NOTIFIER_URL": "https://h/x"}
    assert isinstance(OperatorSettings.from_env(env).notifier, WebhookNotifier)
    assert isinstance(OperatorSettings.from_env({}).notifier, NullNotifier)
