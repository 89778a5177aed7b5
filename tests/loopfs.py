"""A file system on a loop device, mounted for a test and always taken down afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.run import run

MiB = 1024 * 1024


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
