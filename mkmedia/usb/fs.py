"""The stick's file systems, made and changed at their offset: no loop device, no mount.

FAT (the ESP): mkfs.fat --offset with an explicit size (without it the FAT runs over the next
partition), filled with mtools (`-i PATH@@OFFSET`). ext4 (the data partition): mke2fs
-E offset= -d DIR, changed afterwards with debugfs on `PATH?offset=N` (e2fsprogs' io option).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mkmedia.usb.partition import DATA_LABEL, Part
from rescue_runtime.errors import CommandError
from rescue_runtime.run import require, run, which

EXT4_BLOCK = 4096
ESP_LABEL = "MKMEDIAEFI"


def make_esp(target: Path, part: Part, files: Mapping[str, Path]) -> None:
    """FAT32 in `part` of `target` holding `files` (path in the FAT -> file here)."""
    mkfs = require("mkfs.fat", package="dosfstools")
    mmd = require("mmd", package="mtools")
    mcopy = require("mcopy", package="mtools")
    run(
        [
            mkfs,
            "-F",
            "32",
            "-s",
            "1",  # 512-byte clusters: FAT32 wants 65525 of them
            "-n",
            ESP_LABEL,
            "-I",  # the whole disk on purpose: the partition is at --offset
            "--offset",
            str(part.start),
            "-h",
            str(part.start),
            str(target),
            str(part.size // 1024),
        ],
        what="formatting the EFI system partition",
    )
    image = f"{target}@@{part.offset}"
    env = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
    made: set[str] = set()
    for name in sorted(files):
        parents = Path(name).parent.parts
        for depth in range(1, len(parents) + 1):
            sub = "/".join(parents[:depth])
            if sub not in made:
                run([mmd, "-i", image, f"::/{sub}"], env=env, what="filling the ESP")
                made.add(sub)
        run([mcopy, "-i", image, str(files[name]), f"::/{name}"], env=env, what="filling the ESP")


def make_data(target: Path, part: Part, tree: Path) -> None:
    """ext4 labelled MKMEDIA-000 in `part` of `target`, filled from the directory `tree`."""
    mke2fs = require("mke2fs", package="e2fsprogs")
    run(
        [
            mke2fs,
            "-q",
            "-F",  # the target is a whole disk or an image, not the partition itself
            "-t",
            "ext4",
            "-b",
            str(EXT4_BLOCK),
            "-L",
            DATA_LABEL,
            "-E",
            f"offset={part.offset}",
            "-d",
            str(tree),
            str(target),
            str(part.size // EXT4_BLOCK),
        ],
        what="formatting the data partition",
    )


_BANNER = re.compile(r"^debugfs \d")


class DataFs:
    """The ext4 data partition of a stick, read and changed with debugfs (no mount)."""

    def __init__(self, target: Path, part: Part) -> None:
        self.target = target
        self.part = part
        self.spec = f"{target}?offset={part.offset}"

    def _debugfs(self, commands: Sequence[str], *, write: bool, what: str) -> str:
        debugfs = require("debugfs", package="e2fsprogs")
        argv = [debugfs, *(["-w"] if write else []), "-f", "-", self.spec]
        result = run(argv, input="\n".join(commands) + "\n", what=what)
        # debugfs reports a failed request on stderr and still exits 0
        errors = [
            line
            for line in result.stderr.splitlines()
            if line.strip() and not _BANNER.match(line) and not line.startswith("debugfs:")
        ]
        if errors:
            raise CommandError(
                f"debugfs failed while {what} on {self.spec}: {errors[0]}",
                hint="Check the stick with `e2fsck -f` (on an image: 'IMAGE?offset=N'), or "
                "format it again with `mkmedia format`.",
            )
        return result.stdout

    def read(self, inner: str) -> str | None:
        """A text file's content, None when it does not exist."""
        if not self.exists(inner):
            return None
        out = self._debugfs([f'cat "{inner}"'], write=False, what=f"reading {inner}")
        return out.split("\n", 1)[1] if out.startswith("debugfs:") else out

    def exists(self, inner: str) -> bool:
        debugfs = require("debugfs", package="e2fsprogs")
        result = run([debugfs, "-R", f'stat "{inner}"', self.spec], what=f"looking for {inner}")
        return "not found" not in result.stderr and "Inode:" in result.stdout

    def listdir(self, inner: str) -> list[str]:
        """Names in a directory (without . and ..); [] when it does not exist."""
        if not self.exists(inner):
            return []
        out = self._debugfs([f'ls -p "{inner}"'], write=False, what=f"listing {inner}")
        names = []
        for line in out.splitlines():
            fields = line.split("/")
            # /INODE/MODE/UID/GID/NAME/SIZE/
            if len(fields) >= 7 and fields[5] not in (".", "..", ""):
                names.append(fields[5])
        return names

    def apply(self, commands: Sequence[str], what: str) -> None:
        if commands:
            self._debugfs(commands, write=True, what=what)

    @staticmethod
    def put(source: Path, inner: str, *, exists: bool) -> list[str]:
        """Commands that replace `inner` with `source` (written beside, then linked in)."""
        partial = f"{inner}.partial"
        commands = [f'write "{source}" "{partial}"']
        if exists:
            commands.append(f'rm "{inner}"')
        return [*commands, f'ln "{partial}" "{inner}"', f'unlink "{partial}"']

    def remove_tree(self, inner: str) -> list[str]:
        """Commands that delete a directory of files (the rescue image directories are flat)."""
        return [*(f'rm "{inner}/{name}"' for name in self.listdir(inner)), f'rmdir "{inner}"']


def settle(target: Path) -> None:
    """After writing a block device through the whole disk: drop what the kernel cached of its
    partitions (each has its own cache, now stale) and let udev see the new labels."""
    if not target.is_block_device():
        return
    lsblk = require("lsblk", package="util-linux")
    blockdev = require("blockdev", package="util-linux")
    nodes = run([lsblk, "-ln", "-o", "PATH", str(target)], what=f"listing {target}").stdout
    for node in nodes.split():
        run([blockdev, "--flushbufs", node], check=False, what=f"flushing {node}")
    udevadm = which("udevadm")
    if udevadm:
        run([udevadm, "settle", "--timeout=30"], check=False, what="waiting for udev")
