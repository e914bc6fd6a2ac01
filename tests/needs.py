"""What a test needs from the machine, said in one place so CI cannot pass by skipping.

- :func:`require_binary`: a server or tool the test runs. Missing, the test is skipped with
  the install hint on a developer's machine, but FAILS under CI (``CI=true``, or
  ``VIDREC_TESTS_REQUIRE_SERVERS=1``, which ``.ci/run`` sets): a green CI run must mean the
  integration tier really ran.
- :func:`starts_server`: called by every helper that starts a real server. It fails a test
  not marked ``integration``, so ``-m "not integration"`` (``make test-unit``) really needs no
  servers and the per-marker counts ``.ci/run`` prints tell the truth.

``tests/conftest.py`` records the running test in :data:`CURRENT` for the second check.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ENV = "VIDREC_TESTS_REQUIRE_SERVERS"
CURRENT: list[pytest.Item] = []  # the test being set up or run (at most one)


def servers_required() -> bool:
    """True under CI: a missing server binary is a failure, not a skip."""
    flags = (os.environ.get(REQUIRE_ENV, ""), os.environ.get("CI", ""))
    return any(v.strip().lower() in ("1", "true", "yes") for v in flags)


def find_binary(name: str, fallback: str | None = None) -> str:
    """``name`` on PATH, else ``fallback`` (e.g. ``/usr/bin/name``), else ``name``."""
    return shutil.which(name) or fallback or f"/usr/bin/{name}"


def require_binary(binary: str | Path, install: str) -> None:
    """Skip (locally) or fail (CI) the calling test when ``binary`` is not an executable."""
    path = Path(binary)
    if path.is_file() and os.access(path, os.X_OK):
        return
    reason = f"{binary} not installed ({install})"
    if servers_required():
        pytest.fail(f"{reason}; required under CI ({REQUIRE_ENV}/CI set)", pytrace=False)
    pytest.skip(reason)


def starts_server(what: str) -> None:
    """Fail when the running test starts ``what`` without the ``integration`` marker."""
    if not CURRENT:
        return  # outside a test (a script importing the helpers)
    item = CURRENT[-1]
    if item.get_closest_marker("integration") is None:
        pytest.fail(
            f"{item.nodeid} starts {what} but is not marked integration "
            "(unit tests need no servers): add pytest.mark.integration",
            pytrace=False,
        )
