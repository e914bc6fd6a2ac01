"""The seams between packages: which package may import which, read from the source itself.

Every ``import`` is counted, the lazy ones inside functions too, so a dependency cannot hide
in a function body. A new edge between packages has to be added to ``ALLOWED`` on purpose;
the rules the architecture rests on are spelled out as separate tests so that a failure says
which one broke.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

GROUND = {"config", "errors", "schema", "contracts"}

# Who may import whom (packages of ``vidrec``; modules at the top level count as packages).
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "errors": set(),
    "schema": {"config"},
    "contracts": {"config", "errors", "schema"},
    "security": {"config", "contracts"},
    "data": {"config", "errors", "schema"},
    "features": {"config", "errors", "schema", "security", "contracts"},
    "models": {"config", "errors", "schema"},
    "ranking": {"config", "schema", "errors"},
    "retrieval": {"config", "schema", "errors", "contracts"},
    "pipeline": GROUND | {"features"},
    "backends": GROUND | {"features", "models", "pipeline", "ranking", "retrieval", "security"},
    "api": GROUND | {"backends", "features", "pipeline", "security"},
    "events": GROUND | {"features", "security"},
    "rollout": GROUND | {"cli_support", "security"},
    "offline": GROUND
    | {"data", "events", "features", "models", "ranking", "retrieval", "security", "backends"},
    "cli_support": {"errors"},
    "cli": GROUND | {"cli_support", "events", "offline", "ranking", "rollout", "security"},
}


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def _graph(top: str) -> dict[str, dict[str, set[str]]]:
    """``{package: {imported top-level name: {files}}}`` for the packages under ``src/top``."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted((SRC / top).rglob("*.py")):
        rel = path.relative_to(SRC)
        owner = rel.parts[1].removesuffix(".py") if len(rel.parts) > 1 else top
        package = ".".join(rel.with_suffix("").parts[:-1])
        for module in _imported_modules(path, package):
            parts = module.split(".")
            if parts[0] == "vidrec_dev" and top == "vidrec":
                edges[owner]["vidrec_dev"].add(str(rel))
            elif parts[0] == "vidrec" and len(parts) > 1 and parts[1] != owner:
                edges[owner][parts[1]].add(str(rel))
    return edges


GRAPH = _graph("vidrec")


def _offending(package: str, forbidden: set[str]) -> dict[str, list[str]]:
    return {dep: sorted(files) for dep, files in GRAPH[package].items() if dep in forbidden}


def test_the_graph_is_read_from_real_imports() -> None:
    # The reader itself: the CLI imports the rollout commands, serving imports the pipeline.
    assert "rollout" in GRAPH["cli"]
    assert "pipeline" in GRAPH["backends"]
    assert set(ALLOWED) >= set(GRAPH), f"packages with no rule: {set(GRAPH) - set(ALLOWED)}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_it_may(package: str) -> None:
    extra = {
        dep: sorted(files) for dep, files in GRAPH[package].items() if dep not in ALLOWED[package]
    }
    assert not extra, f"vidrec.{package} imports packages outside its rule: {extra}"


def test_serving_never_imports_offline_jobs_or_raw_data() -> None:
    for serving in ("api", "backends"):
        assert not _offending(serving, {"offline", "data"}), serving


def test_rollout_and_events_never_import_serving() -> None:
    for package in ("rollout", "events"):
        assert not _offending(package, {"api", "backends", "pipeline"}), package


def test_the_ground_floor_imports_nothing_above_it() -> None:
    assert set(GRAPH["contracts"]) <= {"config", "errors", "schema"}


def test_nothing_imports_the_cli_or_the_development_tooling() -> None:
    for package, deps in GRAPH.items():
        assert "cli" not in deps, package
        assert "vidrec_dev" not in deps, (package, sorted(deps.get("vidrec_dev", ())))


def test_the_runtime_image_does_not_ship_the_development_tooling() -> None:
    dockerfile = (ROOT / "images" / "python" / "Dockerfile").read_text()
    copies = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY src")]
    assert copies == ["src/vidrec"], copies


def test_the_cli_runs_without_the_development_tooling() -> None:
    """As in the runtime image: ``vidrec_dev`` cannot be imported, its commands are absent and
    the rest of the CLI works."""
    script = (
        "import sys; sys.modules['vidrec_dev'] = None\n"
        "from typer.main import get_command\n"
        "from vidrec.cli import app\n"
        "print(' '.join(sorted(get_command(app).commands)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"pipeline", "serve", "rollout", "users"} <= set(out)
    assert not {"bench", "stack", "chaos"} & set(out)
    with_dev = subprocess.run(
        [sys.executable, "-c", script.split("\n", 1)[1]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"bench", "stack", "chaos"} <= set(with_dev)
