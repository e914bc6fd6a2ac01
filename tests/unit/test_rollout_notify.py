"""Notifier factory: nothing configured, unknown or broken → NullNotifier, never an error."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from vidrec.rollout import notify
from vidrec.rollout.notify import NullNotifier, notifier_for


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
