"""File names inside an artefact directory that one command writes and another reads.

The offline build writes the serving rule tables (``serving/``) next to the models and the
index; serving only reads them. A file that is missing is an error naming the command that
builds it — serving never builds artefacts itself.
"""

from __future__ import annotations

from pathlib import Path

from vidrec.errors import InputError

MANIFEST_FILE = "manifest.json"
SERVING_DIR = "serving"  # rule tables computed from the artefact's event log
VIDEOS_FILE = "videos.parquet"  # catalogue metadata + popularity, one row per video
TRENDING_FILE = "trending.parquet"  # top videos per region
CLOCK_FILE = "clock.json"  # {"log_end_ms": ...}: serving "now" for this artefact
SERVING_FILES = (VIDEOS_FILE, TRENDING_FILE, CLOCK_FILE)
RULE_TABLES_COMMAND = "vidrec serve tables {root}"


class MissingArtefact(InputError):
    """An artefact file serving needs is absent; the message names the command to run."""


def require(root: Path, relative: str, command: str) -> Path:
    """``root / relative`` if it exists, else :class:`MissingArtefact` saying what builds it."""
    path = root / relative
    if not path.exists():
        raise MissingArtefact(f"{path}: missing; build it with `{command.format(root=root)}`")
    return path


def serving_tables(root: Path) -> Path:
    """The ``serving/`` directory of ``root`` with all its files present."""
    for name in SERVING_FILES:
        require(root, f"{SERVING_DIR}/{name}", RULE_TABLES_COMMAND)
    return root / SERVING_DIR
