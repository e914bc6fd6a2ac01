"""Settings and helpers the integration tests share."""

import contextlib
import os
import signal

from vidrec_dev.stack.process import group_members

# Generous stage deadlines for servers started by tests: they judge behaviour, not speed, on
# two shared cores; the benchmark measures speed with the default deadlines.
SLOW_MACHINE = {
    f"VIDREC_SERVING__DEADLINE_{k}_MS": "3000"
    for k in ("CONTEXT", "SOURCES", "FILTERS", "HYDRATE", "SCORE", "MIX")
} | {"VIDREC_SERVING__DEADLINE_TOTAL_MS": "9000", "VIDREC_SERVING__BREAKER_FAILURES": "3"}


def crash(pgid: int) -> None:
    """SIGKILL a stack service and every process it started, as a crash would."""
    for pid in group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
