"""Errors a person can act on.

``InputError`` marks a problem with what the user gave us (a file, a column, a flag). The CLI
turns it into a one-line message and exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad user input: the message names the file/field and says what to do next."""


class GateFailed(Exception):
    """The new model does not beat the baseline by the configured margin: nothing exported.

    ``kept`` is where the refused run's metrics and report were kept for a person to read.
    """

    def __init__(
        self,
        reasons: list[str],
        metrics: dict[str, float] | None = None,
        evaluation: dict[str, Any] | None = None,
    ) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.metrics = metrics or {}
        self.evaluation = evaluation or {}
        self.kept: Path | None = None
