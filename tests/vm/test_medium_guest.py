"""The rescue system finds the backup inside its own ISO (BACKUP_URL=iso:///backup).

On the host, `mkmedia mkbackup` makes the rescue ISO with a backup of a small file system of
the test's own (tests/capture_root.py limits the layout capture to it). A copy of that ISO
gets one byte of its backup volume changed in place. One BIOS guest gets the good ISO as the
IDE CD it boots from and, read-only, as a virtio disk (the hybrid image as a USB stick would
carry it), and the damaged copy as a virtio-scsi CD. Devices are taken away and brought back
through sysfs (SCSI delete and rescan, PCI remove), so each run sees the media it needs:

- the good media: `mkmedia recover --demo /tmp/r` restores the files (their sha256 compared
  in the guest with the host's) and reports the CD and the disk as medium devices;
- the damaged CD first: it refuses with the checksum message and /tmp/r2 does not appear;
- no medium at all: it says that no medium carries the marker, naming what it searched.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pycdlib
import pytest

from mkmedia.qemu import Guest, Machine
from tests.loopfs import MiB, loop_filesystem
from tests.rescue_build import build_media, rescue_guest, sh

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="the small system is a loop device (root)"),
]

BLOB = "data/blob.bin"
STEP = 600.0


def make_small_system(root: Path) -> dict[str, str]:
    """A few files; returns sha256 by relative path."""
    (root / "data").mkdir()
    (root / "dir with space").mkdir()
    (root / "hello.txt").write_text("hello from the backup\n")
    (root / BLOB).write_bytes(random.Random(11).randbytes(300 * 1024))
    (root / "dir with space" / "note").write_text("spaces survive\n")
    (root / "data" / "link").symlink_to("blob.bin")
    return {
        path: hashlib.sha256((root / path).read_bytes()).hexdigest()
        for path in ("hello.txt", BLOB, "dir with space/note")
    }


def damaged_copy(iso: Path, copy: Path) -> None:
    """`iso` with one byte in the middle of /backup/backup.tar.zst changed (same size)."""
    shutil.copyfile(iso, copy)
    reader = pycdlib.PyCdlib()
    reader.open(str(copy))
    try:
        record = reader.get_record(rr_path="/backup/backup.tar.zst")
        offset = record.extent_location() * 2048 + record.get_data_length() // 2
    finally:
        reader.close()
    with open(copy, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    work = tmp_path_factory.mktemp("medium")
    mnt = work / "system"
    with loop_filesystem(work / "system.img", mnt, "ext4", size=32 * MiB) as device:
        sums = make_small_system(mnt)
        out = build_media(
            work,
            output="ISO",
            workflow="mkbackup",
            sets=("BACKUP=NETFS", "BACKUP_URL=iso:///backup", "BOOT_DEFAULT=rescue"),
            command=(sys.executable, "-m", "tests.capture_root", str(mnt), device),
        )
    manifest = json.loads((out / "manifest.json").read_text())
    (iso,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "iso"]
    bad = work / "damaged.iso"
    damaged_copy(iso, bad)
    yield iso, bad, sums


def cd_drives(guest: Guest) -> dict[str, str]:
    """sr name -> its sysfs device path."""
    out = sh(
        guest, "for d in /sys/block/sr*; do [ -e $d ] && echo ${d##*/} $(readlink -f $d); done"
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def test_recover_demo_from_the_rescue_cd(
    media: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    iso, bad, sums = media
    virtio_cd = [
        "-device", "virtio-scsi-pci,id=scsi0",
        "-drive", f"file={bad},if=none,id=badcd,media=cdrom,readonly=on,format=raw",
        "-device", "scsi-cd,drive=badcd,bus=scsi0.0",
        "-drive", f"file={iso},if=none,id=stick,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=stick,serial=hybrid-stick",
    ]  # fmt: skip
    machine = Machine(firmware="bios", cdrom=iso, boot_order="d", extra=virtio_cd)
    with rescue_guest(machine, tmp_path / "console.log", extra_seconds=1800) as guest:
        sh(guest, "dmesg -n 1; modprobe -a sr_mod isofs; udevadm settle --timeout=30 || true")
        drives = cd_drives(guest)
        assert len(drives) == 2, drives
        (good,) = [name for name, path in drives.items() if "virtio" not in path]
        (damaged,) = [name for name, path in drives.items() if "virtio" in path]
        host = re.search(r"/(host\d+)/", drives[damaged])
        assert host, drives
        stick = sh(guest, "readlink -f /sys/block/vd*").strip()
        pci = re.search(r"/(0000:[0-9a-f:.]+)/virtio\d+/block/(vd[a-z]+)$", stick)
        assert pci, stick
        disk = f"/dev/{pci.group(2)}"

        # the good media: the CD and the disk
        sh(guest, f"echo 1 > /sys/block/{damaged}/device/delete")
        out = sh(guest, "mkmedia recover --demo /tmp/r")
        assert "Restored " in out and "no disk was touched" in out, out
        reported = out.split("never a recover target):")[1].splitlines()[0]
        assert reported.strip() == ", ".join(sorted([f"/dev/{good}", disk])), out
        for path, digest in sums.items():
            assert sh(guest, f"sha256sum '/tmp/r/{path}'").split()[0] == digest, path
        assert sh(guest, "readlink /tmp/r/data/link").strip() == "blob.bin"
        found = sh(
            guest,
            "python3 -c 'from rescue_runtime.backup.medium import rescue_medium_devices as r; "
            "print(sorted(r()))'",
        )
        assert found.strip() == str(sorted([f"/dev/{good}", disk])), found
        assert sh(guest, "grep -c iso9660 /proc/mounts || true").strip() == "0"  # unmounted

        # the damaged CD, searched before the disk
        sh(guest, f"echo '- - -' > /sys/class/scsi_host/{host.group(1)}/scan; udevadm settle")
        sh(guest, f"echo 1 > /sys/block/{good}/device/delete")
        assert len(cd_drives(guest)) == 1
        status, out = guest.shell("mkmedia recover --demo /tmp/r2", timeout=STEP)
        assert status != 0, out
        assert "does not match the sha256 in its manifest" in out, out
        assert "Nothing was restored" in out and "Traceback" not in out, out
        assert sh(guest, "test -e /tmp/r2 && echo there || echo absent").strip() == "absent"

        # no medium at all
        (left,) = cd_drives(guest)
        sh(guest, f"echo 1 > /sys/block/{left}/device/delete")
        sh(guest, f"echo 1 > /sys/bus/pci/devices/{pci.group(1)}/remove; udevadm settle")
        status, out = guest.shell("mkmedia recover --demo /tmp/r3", timeout=STEP)
        assert status != 0, out
        assert "No medium carries this rescue system's marker /mkmedia/id-" in out, out
        assert "Insert the rescue CD/DVD" in out, out
        found = sh(
            guest,
            "python3 -c 'from rescue_runtime.backup.medium import rescue_medium_devices as r; "
            "print(sorted(r()))'",
        )
        assert found.strip() == "[]", found
