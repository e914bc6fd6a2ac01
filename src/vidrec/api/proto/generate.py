"""Regenerate the committed gRPC stubs from ``proto/recommender.proto``.

Run ``python -m vidrec.api.proto.generate`` after editing the .proto; a test checks
that the committed files equal a fresh generation. grpc_tools writes ``import recommender_pb2``
(a top-level import); it is rewritten to a package-relative one so the stubs live here.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

from vidrec.config import REPO_ROOT

PROTO_DIR = REPO_ROOT / "proto"
PROTO = "recommender.proto"
OUT_DIR = Path(__file__).resolve().parent
GENERATED = ("recommender_pb2.py", "recommender_pb2.pyi", "recommender_pb2_grpc.py")
# Generated code keeps protoc's layout: lint, format and type checks are off for these files.
HEADER = (
    "# Generated from proto/recommender.proto by vidrec.api.proto.generate; do not edit.\n"
    "# ruff: noqa\n# fmt: off\n# mypy: ignore-errors\n"
)


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write the stubs into ``out_dir`` and return their paths."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={tmp}", f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}", str(PROTO_DIR / PROTO),
        ]  # fmt: skip
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_DIR / PROTO}")
        written = []
        for name in GENERATED:
            text = (Path(tmp) / name).read_text()
            text = text.replace("import recommender_pb2 as", "from . import recommender_pb2 as")
            target = out_dir / name
            target.write_text(HEADER + text)
            written.append(target)
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR):
        print(path)
