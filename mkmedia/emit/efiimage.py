"""The FAT image behind the El Torito UEFI entry (and the hybrid's 0xEF partition).

mkfs.fat --invariant plus a fixed volume id, and mtools with SOURCE_DATE_EPOCH and source
mtimes set to the same instant, make the image depend only on its contents and that date.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.errors import MkmediaError
from rescue_runtime.run import require, run

SECTOR = 512
# FAT12/16 overhead (boot sector, two FATs, root directory) plus slack for directory clusters.
_SLACK_KIB = 256
# pycdlib sizes the El Torito entry and the hybrid partition from a 16-bit sector count.
MAX_KIB = 65535 * SECTOR // 1024


def fat_image(
    output: Path,
    files: Mapping[str, Path],
    *,
    work_dir: Path,
    epoch: int,
    volume_id: int = 0x4D4B4D44,  # "MKMD"
    label: str = "EFIBOOT",
) -> Path:
    """Write a FAT image holding `files` (path inside the image -> source) and return it."""
    size_kib = payload_kib(files) + _SLACK_KIB
    size_kib += (-size_kib) % 64  # whole 64 KiB steps, stable across small changes
    if size_kib > MAX_KIB:
        raise MkmediaError(
            f"The EFI boot image would be {size_kib} KiB, over the {MAX_KIB} KiB an El Torito "
            "entry can describe.",
            hint="Keep only boot loader files in the EFI image; the kernel and initrd stay in "
            "the ISO9660 tree.",
        )
    return make_fat(
        output, files, size_kib, work_dir=work_dir, epoch=epoch, volume_id=volume_id, label=label
    )


def payload_kib(files: Mapping[str, Path]) -> int:
    """KiB the files take in 4 KiB clusters."""
    return sum(-(-path.stat().st_size // 4096) * 4 for path in files.values())


def make_fat(
    output: Path,
    files: Mapping[str, Path],
    size_kib: int,
    *,
    work_dir: Path,
    epoch: int,
    volume_id: int = 0x4D4B4D44,
    label: str = "EFIBOOT",
    fat_bits: int | None = None,
    hidden_sectors: int = 0,
) -> Path:
    """A FAT file system of `size_kib` holding `files`, reproducibly (see the module)."""
    mkfs = require("mkfs.fat", package="dosfstools")
    mmd = require("mmd", package="mtools")
    mcopy = require("mcopy", package="mtools")
    bits = ["-F", str(fat_bits)] if fat_bits else []
    # a partition's file system records where it starts (SYSLINUX's boot sector reads it)
    bits += ["-h", str(hidden_sectors)] if hidden_sectors else []
    # an intermediate in the work directory: no fsync
    with atomic.atomic_path(output, durable=False) as tmp:
        argv = [mkfs, "--invariant", *bits, "-i", f"{volume_id:08X}", "-n", label, "-C"]
        run([*argv, str(tmp), str(size_kib)], what="formatting the FAT image")
        env = {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}
        staging = work_dir / "efi-staging"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        directories = sorted({str(Path(name).parent) for name in files} - {"."})
        made: set[str] = set()
        for directory in directories:
            parts = Path(directory).parts
            for depth in range(1, len(parts) + 1):
                sub = "/".join(parts[:depth])
                if sub not in made:
                    run([mmd, "-i", tmp, f"::/{sub}"], env=env, what="creating the EFI boot image")
                    made.add(sub)
        for index, (name, source) in enumerate(sorted(files.items())):
            # a private copy whose mtime we may set (mcopy -m keeps it)
            copy = staging / f"{index}"
            shutil.copyfile(source, copy)
            os.utime(copy, (epoch, epoch))
            run([mcopy, "-m", "-i", tmp, copy, f"::/{name}"], env=env, what="filling the EFI image")
        shutil.rmtree(staging, ignore_errors=True)
    return output
