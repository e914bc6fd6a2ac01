"""What every `vidrec` command shares: turning known failures into one clear line + exit code.

A known failure (bad input, a failed gate, a stack service that did not come up) prints what
went wrong and what to do next, and exits with its own code; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar

from rich.console import Console

from vidrec.errors import GateFailed, InputError

F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True)


def exits_on(
    handlers: Mapping[type[BaseException], tuple[int, Callable[[Any], str]]],
) -> Callable[[F], F]:
    """Decorator: for each exception type, print ``render(exc)`` and exit with its code."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except tuple(handlers) as exc:
                code, render = next(h for t, h in handlers.items() if isinstance(exc, t))
                err.print(render(exc), highlight=False)
                sys.exit(code)

        return wrapper  # type: ignore[return-value]

    return decorate


EXIT_INPUT = 2
EXIT_GATE = 3


def _gate_failure(exc: Any) -> str:
    reasons = "\n".join(f"  • {r}" for r in exc.reasons)
    kept = getattr(exc, "kept", None)
    where = f"\nmetrics, gate checks and report kept in {kept}" if kept else ""
    return f"[bold red]quality gate failed — nothing was exported:[/]\n{reasons}{where}"


def friendly(fn: F) -> F:
    """Input errors exit 2 naming the file/field; a failed quality gate exits 3."""
    return exits_on(
        {
            InputError: (EXIT_INPUT, lambda exc: f"[bold red]error:[/] {exc}"),
            GateFailed: (EXIT_GATE, _gate_failure),
        }
    )(fn)
