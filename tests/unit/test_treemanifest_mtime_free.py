"""treemanifest's mtime_free globs: there the mtime may change, every other field still counts."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e import treemanifest


def test_mtime_free_paths_ignore_only_the_mtime(tmp_path: Path) -> None:
    (tmp_path / "grub").mkdir()
    module = tmp_path / "grub" / "normal.mod"
    other = tmp_path / "kept.txt"
    module.write_text("module")
    other.write_text("kept")
    free = [f"{tmp_path}/grub/*"]
    before = treemanifest.record([str(tmp_path)], [], mtime_free=free)
    os.utime(module, ns=(0, 10**18))  # rewritten with the same bytes
    assert treemanifest.compare(before, treemanifest.record([str(tmp_path)], [])) == []
    os.utime(other, ns=(0, 10**18))
    module.chmod(0o600)
    problems = treemanifest.compare(before, treemanifest.record([str(tmp_path)], []))
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"changed: {module} mode: '0644' -> '0600'"), problems
    assert problems[1].startswith(f"changed: {other} mtime_ns: "), problems
