"""USB sticks for the usb:// backup tests: an image made by the real `mkmedia format`, and
that image attached as a loop device with its partitions (always detached afterwards)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.run import run

REPO = Path(__file__).resolve().parent.parent
# What `mkmedia format` runs (GPT, GRUB for BIOS and UEFI, FAT, ext4) and what attaching takes.
FORMAT_TOOLS = ("losetup", "partx", "sgdisk", "grub-mkimage", "mkfs.fat", "mcopy", "debugfs")
STICK_SIZE = "160M"  # the smallest stick with room for a backup of the rich tree


def make_stick(image: Path, work: Path) -> None:
    """`mkmedia format IMAGE --size 160M --yes` with the test's own lock, log and layout."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MKMEDIA_LOCK_FILE=str(work / "format.lock"))
    argv = [sys.executable, "-m", "mkmedia", "format", str(image), "--size", STICK_SIZE, "--yes"]
    argv += ["-c", str(work / "etc"), "--log-file", str(work / "format.log")]
    argv += ["--set", f"LAYOUT_DIR={work / 'no-layout'}"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def attached_stick(image: Path) -> Iterator[str]:
    """The image on a loop device (/dev/loopN; its data partition is /dev/loopNp3)."""
    device = run(["losetup", "-f", "-P", "--show", image]).stdout.strip()
    try:
        if not Path(f"{device}p3").exists():
            # some kernels leave the partition scan of a fresh loop device to user space
            run(["partx", "-a", device], check=False)
        yield device
    finally:
        run(["losetup", "-d", device], check=False)
