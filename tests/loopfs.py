"""A file system on a loop device, mounted for a test and always taken down afterwards."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rescue_runtime.run import run, which

MiB = 1024 * 1024


def root_test_marks(
    root_for: str, tools: Sequence[str], missing: str
) -> list[pytest.MarkDecorator]:
    """The marks of an integration test that needs root (`root_for`: the reason) and every
    one of `tools` (`missing`: the reason when one is not installed)."""
    return [
        pytest.mark.integration,
        pytest.mark.skipif(os.geteuid() != 0, reason=root_for),
        pytest.mark.skipif(any(which(tool) is None for tool in tools), reason=missing),
    ]


# What the backup round trips need: root (loop devices, mknod, setcap, chown) and the tools.
BACKUP_TEST_MARKS = root_test_marks(
    "loop devices, mknod and setcap need root",
    ("losetup", "setfacl", "setcap", "tar", "zstd"),
    "losetup, setfacl (acl), setcap (libcap2-bin), tar or zstd missing",
)


@contextlib.contextmanager
def loop_filesystem(
    image: Path, mountpoint: Path, fstype: str, *, size: int = 256 * MiB
) -> Iterator[str]:
    """mkfs `fstype` on a fresh image, attach and mount it; yields the loop device."""
    run(["truncate", "-s", str(size), image])
    mkfs = {"ext4": ["mkfs.ext4", "-q", "-F"], "btrfs": ["mkfs.btrfs", "-q", "-f"]}[fstype]
    run([*mkfs, image])
    device = run(["losetup", "-f", "--show", image]).stdout.strip()
    mountpoint.mkdir(parents=True, exist_ok=True)
    try:
        run(["mount", device, mountpoint])
        try:
            yield device
        finally:
            run(["umount", mountpoint], check=False)
    finally:
        run(["losetup", "-d", device], check=False)
        image.unlink(missing_ok=True)
