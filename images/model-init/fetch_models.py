"""Copy vidrec serving artefacts (or their Triton model repository) into a pod volume.

The Triton pod's first initContainer, and the vidrec pods' when the model store is an object
storage URI: ``python fetch_models.py --source SRC --dest DIR [--subdir model_repository]
[--models ranker,ranker_trt]``. SRC is a mounted directory (a PVC) or ``s3://``/``gs://``/
``az://``/``https://`` (fsspec, credentials from the environment). The copy lands in a
temporary directory and is renamed into place, so a crash never leaves half a repository; a
missing model or an empty source fails with a message naming it. Self-contained on purpose:
the image carries no vidrec code.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def _copy_local(src: Path, dst: Path, names: list[str] | None) -> None:
    if not src.is_dir():
        raise SystemExit(f"fetch_models: {src}: not a directory (is the model store mounted?)")
    for name in names or sorted(p.name for p in src.iterdir()):
        item = src / name
        if not item.exists():
            raise SystemExit(f"fetch_models: {item}: missing in the model store")
        if item.is_dir():
            shutil.copytree(item, dst / name)
        else:
            shutil.copy2(item, dst / name)


def _copy_remote(uri: str, dst: Path, names: list[str] | None) -> None:
    import fsspec  # only the URI path needs it (installed in the image)

    fs, root = fsspec.core.url_to_fs(uri)
    if not fs.exists(root):
        raise SystemExit(f"fetch_models: {uri}: not found")
    for name in names or sorted(Path(p).name for p in fs.ls(root, detail=False)):
        path = f"{root.rstrip('/')}/{name}"
        if not fs.exists(path):
            raise SystemExit(f"fetch_models: {uri}/{name}: missing in the model store")
        fs.get(path, str(dst / name), recursive=True)


def fetch(source: str, dest: Path, subdir: str = "", models: list[str] | None = None) -> Path:
    """Fill ``dest`` with ``source[/subdir]`` (only ``models`` when given); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        staging = Path(tmp)
        if "://" in source:
            _copy_remote(f"{source.rstrip('/')}/{subdir}" if subdir else source, staging, models)
        else:
            _copy_local(Path(source) / subdir if subdir else Path(source), staging, models)
        copied = sorted(p.name for p in staging.iterdir())
        if not copied:
            raise SystemExit(f"fetch_models: {source}/{subdir}: nothing to copy")
        for name in copied:
            target = dest / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (staging / name).rename(target)
    print(f"fetch_models: {source}{'/' + subdir if subdir else ''} -> {dest}: {', '.join(copied)}")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="mounted directory or object-store URI")
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--subdir", default="", help="e.g. model_repository")
    parser.add_argument("--models", default="", help="comma-separated entries to copy")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m] or None
    fetch(args.source, args.dest, args.subdir, models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
