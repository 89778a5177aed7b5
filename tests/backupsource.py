"""What the NETFS round trips share: a rich tree on its own ext4 (a loop device) with the
layout captured for it, and the progress callback that shows nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.layout.capture import capture
from rescue_runtime.layout.model import Layout
from tests.loopfs import loop_filesystem
from tests.metadata import make_rich_tree


def quiet(done: int, total: int) -> None:
    """Progress callback of the tests: the line itself is not under test."""


@contextlib.contextmanager
def rich_source(tmp_path: Path) -> Iterator[tuple[Path, Layout, str]]:
    """(mount point, its layout, its device) of make_rich_tree on a fresh ext4; the caller
    adds what it needs before it backs up."""
    mnt = tmp_path / "source"
    with loop_filesystem(tmp_path / "source.img", mnt, "ext4") as device:
        make_rich_tree(mnt)
        yield mnt, capture(str(mnt), devices=[device]), device
