from pathlib import Path

import pytest

from vidrec.offline.staging import staged_dir


def test_success_replaces_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_dir(out) as stage:
        (stage / "manifest.json").write_text("{}")
        assert not (out / "manifest.json").exists()  # invisible until the end
    assert (out / "manifest.json").exists()
    assert not (out / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_dir(out) as stage:
        (stage / "manifest.json").write_text("{}")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
