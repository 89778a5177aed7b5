"""rescue_runtime.atomic: a result appears whole under its name, or the old one stays."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

from rescue_runtime import atomic

ROOT = Path(__file__).resolve().parents[2]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(atomic.PARTIAL_SUFFIX))


def test_success_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "result.bin"
    atomic.write_bytes(dest, b"old")
    atomic.write_bytes(dest, b"new", mode=0o640)
    assert dest.read_bytes() == b"new"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert _leftovers(dest.parent) == []


def test_text_and_open_variants(tmp_path: Path) -> None:
    atomic.write_text(tmp_path / "a.txt", "grüß\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "grüß\n"
    with atomic.atomic_open(tmp_path / "b.bin") as handle:
        handle.write(b"\x00\x01")
        assert not (tmp_path / "b.bin").exists(), "nothing under the name before the end"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "result.json"
    dest.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.atomic_open(dest, False) as handle:
        handle.write("half of the new")
        raise RuntimeError("writer failed")
    assert dest.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_interrupt_cleans_up_a_tool_written_directory(tmp_path: Path) -> None:
    dest = tmp_path / "tree"
    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(dest) as tmp:
        (tmp / "sub").mkdir(parents=True)
        (tmp / "sub" / "file").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_symlink_and_copy(tmp_path: Path) -> None:
    with atomic.atomic_path(tmp_path / "link", durable=False) as tmp:
        os.symlink("target", tmp)
    assert os.readlink(tmp_path / "link") == "target"
    (tmp_path / "src").write_bytes(b"payload")
    atomic.copy_file(tmp_path / "src", tmp_path / "dst", mode=0o600)
    assert (tmp_path / "dst").read_bytes() == b"payload"
    assert stat.S_IMODE((tmp_path / "dst").stat().st_mode) == 0o600


# Renames that are not a single result's write, and why each stays hand-written.
ALLOWED = {
    ("rescue_runtime/atomic.py", "atomic_path"): "the helper itself",
    ("mkmedia/session/outputset.py", "commit"): "commits a staged output set as a whole",
    ("rescue_runtime/backup/commit.py", "complete"): "volumes and manifest as a set, with .old",
    (
        "mkmedia/rootfs/copy.py",
        "_materialise",
    ): "rescue-tree copier: device nodes in the build tree",
    ("mkmedia/rootfs/copy.py", "_file"): "rescue-tree copier: hard links in the build tree",
    ("mkmedia/rootfs/copy.py", "_replace_symlink"): "rescue-tree copier: symlinks in the tree",
    ("mkmedia/pyembed/probe.py", "save"): "runs alone under the host's python -S: no imports",
}


def _renames(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of each os.replace/os.rename/Path.rename/Path.replace."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                attr, owner = child.func.attr, child.func.value
                is_os = isinstance(owner, ast.Name) and owner.id == "os"
                if attr in ("replace", "rename") and (
                    is_os
                    or (  # Path.replace(target) / Path.rename(target): one argument, no keywords
                        len(child.args) == 1
                        and not child.keywords
                        and not (isinstance(owner, ast.Name) and owner.id == "dataclasses")
                    )
                ):
                    found.append((function, child.lineno))
            visit(child, name)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>")
    return found


def test_no_writer_renames_by_hand() -> None:
    offenders = []
    seen = set()
    for package in ("mkmedia", "rescue_runtime"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for function, line in _renames(path):
                if (rel, function) in ALLOWED:
                    seen.add((rel, function))
                else:
                    offenders.append(f"{rel}:{line} in {function}()")
    assert offenders == [], "write through rescue_runtime.atomic instead: " + ", ".join(offenders)
    assert seen == set(ALLOWED), f"stale allow-list entries: {set(ALLOWED) - seen}"
