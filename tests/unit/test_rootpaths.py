"""The one program lookup: rescue_runtime.run.which on the host, RootPaths.which in a tree."""

from __future__ import annotations

import os
from pathlib import Path

from mkmedia.rootpaths import RootPaths
from rescue_runtime.run import SYSTEM_PATH, search_path, which
from tests.files import write_file


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    return write_file(path, text, mode=0o755)


def test_search_path_keeps_path_order_then_system_dirs_once() -> None:
    dirs = search_path("/opt/x/bin:relative:/usr/bin/:/opt/x/bin")
    assert dirs[:2] == ["/opt/x/bin", "/usr/bin"]
    assert "relative" not in dirs
    assert dirs[2:] == [d for d in SYSTEM_PATH if d != "/usr/bin"]


def test_which_on_the_host_takes_the_first_executable(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "tool").parent.mkdir()
    (first / "tool").write_text("not executable")
    executable(second / "tool")
    assert which("tool", dirs=[str(first), str(second)]) == str(second / "tool")
    assert which(str(second / "tool")) == str(second / "tool")
    assert which("b/tool", dirs=[str(tmp_path)]) is None
    assert which("tool", dirs=[str(first)]) is None


def test_which_in_a_tree_follows_absolute_links_inside_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    executable(tree / "usr/libexec/real-tool")
    (tree / "usr/bin").mkdir(parents=True)
    # Absolute inside the tree: on the host this target does not exist.
    os.symlink("/usr/libexec/real-tool", tree / "usr/bin/tool")
    os.symlink("/usr/libexec/missing", tree / "usr/bin/dangling")
    paths = RootPaths(tree)
    assert paths.which("tool", ["/usr/sbin", "/usr/bin"]) == "/usr/bin/tool"
    assert paths.which("/usr/bin/tool", []) == "/usr/bin/tool"
    assert paths.which("dangling", ["/usr/bin"]) is None
    assert which("tool", dirs=[str(tree / "usr/bin")]) is None  # the host sees a dangling link
