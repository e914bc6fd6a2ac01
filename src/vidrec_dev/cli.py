"""The development commands, added to ``vidrec`` through its ``vidrec.cli`` entry point:
``vidrec stack`` (the local stack), ``vidrec bench`` (benchmarks, load tests) and
``vidrec chaos``."""

from __future__ import annotations

import typer

from vidrec_dev.bench.cli import bench_app
from vidrec_dev.loadtest.cli import register as register_loadtest
from vidrec_dev.stack.cli import stack_app


def register(app: typer.Typer) -> None:
    """Add the development command groups to the main ``vidrec`` app."""
    app.add_typer(bench_app, name="bench")
    app.add_typer(stack_app, name="stack")
    register_loadtest(app, bench_app)
