"""An iso:// backup spread over two CDs, restored in a guest with the discs in its drives.

On the host the real `mkmedia mkbackup` (tests/capture_root.py limits the layout capture to a
small file system of the test's own: a rich tree, tests/metadata.py, and a few MiB that do not
compress) writes the backup in 1 MiB volumes (BACKUP_VOLUME_SIZE) with ISO_MAX_SIZE just above
the rescue system, so its own steps split it: the rescue ISO carries the manifest,
backup-media.json and the first volumes, rescue-vol002.iso the rest with its marker. The
rescue system's size on this host comes from a RAMDISK build with the same settings.

One BIOS guest (SeaBIOS) boots the rescue ISO from its first IDE CD drive, with the volume ISO
in the second:

- `mkmedia recover --demo --unattended` into a directory of an ext4 virtio disk finds the
  second medium by its marker in the other drive, and the tree checker (tests/e2e/
  treemanifest.py) compares every entry's content and metadata with the host's record of the
  original; both drives are named as devices the demo never writes;
- the second drive taken away (SCSI delete): the demo refuses, naming backup medium 2 of 2,
  and restores nothing;
- interactive, the demo asks for medium 2 of 2 with the first disc unmounted (a machine with
  one drive could swap them); the drive comes back (SCSI rescan), Enter, and the second
  restore passes the same comparison.

The verdicts come from inside the guest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from mkmedia.emit.isovolumes import ISO_OVERHEAD
from mkmedia.qemu import Guest, Machine
from mkmedia.recoverdemo import extract_iso_directory
from rescue_runtime.backup.manifest import MANIFEST_NAME
from rescue_runtime.backup.spanning import MEDIA_NAME
from rescue_runtime.run import which
from tests.e2e import treemanifest
from tests.loopfs import MiB, loop_filesystem
from tests.metadata import make_rich_tree
from tests.rescue_build import build_media, rescue_guest, sh

TOOLS = ("setcap", "setfacl", "xorriso")
pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices, mknod and setcap need root"),
    pytest.mark.skipif(
        any(which(tool) is None for tool in TOOLS), reason=f"one of {', '.join(TOOLS)} missing"
    ),
]

STEP = 600.0
ROOM = 3  # MiB of volumes beside the rescue system on the first medium
SETS = (
    "BACKUP=NETFS",
    "BACKUP_URL=iso:///backup",
    "BOOT_DEFAULT=rescue",
    "REQUIRED_PROGS+=mkfs.ext4",
)


def compare(guest: Guest, check: Path, target: str) -> str:
    """The tree checker's verdict on `target` against the host's record, from the guest."""
    status, out = guest.shell(
        f"python3 {check}/treemanifest.py compare {check}/expected.json --under {target}",
        timeout=STEP,
    )
    assert status == 0, out
    return out.strip().splitlines()[-1].removeprefix("treemanifest: ")


def wait_for(guest: Guest, test: str) -> str:
    """/tmp/asked.out once the shell `test` holds (the demo runs in the background)."""
    sh(guest, f"for ((i = 0; i < {int(STEP) // 2}; i++)); do {test} && break; sleep 1; done")
    return sh(guest, "cat /tmp/asked.out")


def medium_size(work: Path, sets: tuple[str, ...]) -> int:
    """MiB of an ISO_MAX_SIZE that leaves ROOM MiB beside this host's rescue system."""
    ramdisk = build_media(work, output="RAMDISK", sets=sets)
    system = sum((ramdisk / name).stat().st_size for name in ("rescue-kernel", "rescue-initrd.img"))
    return -(-(system + ISO_OVERHEAD) // MiB) + ROOM


def test_recover_demo_over_two_cd_drives(tmp_path: Path) -> None:
    check = tmp_path / "check"  # copied into the rescue system: the checker and the record
    check.mkdir()
    shutil.copy(Path(treemanifest.__file__), check / "treemanifest.py")
    system = tmp_path / "system"
    with loop_filesystem(tmp_path / "system.img", system, "ext4", size=64 * MiB) as device:
        make_rich_tree(system)
        for n in range(6):  # 6 MiB that zstd cannot shrink: volumes for both media
            (system / f"random-{n}.bin").write_bytes(os.urandom(MiB))
        record = treemanifest.record(["/"], ["/lost+found"], under=str(system))
        (check / "expected.json").write_text(json.dumps(record))
        sets = (*SETS, f"COPY_AS_IS+={check}")
        size = medium_size(tmp_path / "ramdisk", sets)
        out = build_media(
            tmp_path / "build",
            output="ISO",
            workflow="mkbackup",
            sets=(*sets, f"ISO_MAX_SIZE={size}", "BACKUP_VOLUME_SIZE=1"),
            command=(sys.executable, "-m", "tests.capture_root", str(system), device),
        )
    entries = len(record["entries"])  # type: ignore[arg-type]
    artifacts = json.loads((out / "manifest.json").read_text())["artifacts"]
    (iso,) = [Path(a["path"]) for a in artifacts if a["kind"] == "iso"]
    (volumes,) = [Path(a["path"]) for a in artifacts if a["kind"] == "iso-volume"]
    assert volumes.name == "rescue-vol002.iso"
    first = extract_iso_directory(iso, "backup", tmp_path / "first")
    names = {p.name for p in first.iterdir()}
    assert {MANIFEST_NAME, MEDIA_NAME} <= names and any(".zst." in n for n in names), names

    disk = tmp_path / "restore.img"
    with open(disk, "wb") as f:
        f.truncate(256 * MiB)
    machine = Machine(firmware="bios", cdrom=iso, cdroms=[volumes], boot_order="d", disks=[disk])
    with rescue_guest(machine, tmp_path / "console.log", extra_seconds=1800) as guest:
        sh(guest, "dmesg -n 1; modprobe -a sr_mod isofs; udevadm settle --timeout=30 || true")
        labels = sh(guest, "for d in /dev/sr*; do echo $d $(blkid -o value -s LABEL $d); done")
        # a disc's drive and its label (QEMU's own empty drive on the second IDE bus has none)
        drives = dict(line.split() for line in labels.splitlines() if len(line.split()) == 2)
        assert len(drives) == 2, labels
        (second,) = [d for d, label in drives.items() if label.startswith("BACKUP_002_")]
        sh(guest, "mkfs.ext4 -q -F /dev/vda && mkdir /restore && mount /dev/vda /restore")

        done = sh(guest, "mkmedia recover --demo /restore/all --unattended 2>&1")
        assert "Restored " in done and "no disk was touched" in done, done
        devices = done.split("never a recover target):")[1].splitlines()[0].strip()
        assert devices == ", ".join(sorted(drives)), done
        assert compare(guest, check, "/restore/all") == f"{entries} entries, 0 differences"
        assert sh(guest, "grep -c iso9660 /proc/mounts || true").strip() == "0"

        # the second drive gone: unattended, a refusal naming the medium, nothing restored
        scsi_host = re.search(r"/(host\d+)/", sh(guest, f"readlink -f /sys/block/{second[5:]}"))
        assert scsi_host, second
        sh(guest, f"echo 1 > /sys/block/{second[5:]}/device/delete; udevadm settle || true")
        status, refused = guest.shell(
            "mkmedia recover --demo /restore/missing --unattended 2>&1", timeout=STEP
        )
        assert status != 0, refused
        assert "backup medium 2 of 2" in refused and "nothing was touched" in refused, refused
        assert "Traceback" not in refused, refused
        assert sh(guest, "ls /restore").split() == ["all", "lost+found"]

        # interactive: asked for, with the first disc out of its drive (one drive would do);
        # the disc "inserted" (the drive back by a SCSI rescan), Enter, and the restore ends
        sh(
            guest,
            # the demo's stdin a FIFO (by python3: the rescue system has no mkfifo)
            "python3 -c 'import os; os.mkfifo(\"/tmp/answer\")'; "
            "(mkmedia recover --demo /restore/asked 0<>/tmp/answer "
            ">/tmp/asked.out 2>&1; echo $? >/tmp/asked.rc) &",
        )
        asked = wait_for(guest, "grep -q 'Insert backup medium 2 of 2' /tmp/asked.out")
        assert "Insert backup medium 2 of 2" in asked, asked
        assert sh(guest, "grep -c iso9660 /proc/mounts || true").strip() == "0"
        sh(guest, f"echo '- - -' > /sys/class/scsi_host/{scsi_host.group(1)}/scan")
        sh(guest, "udevadm settle || true; echo > /tmp/answer")
        finished = wait_for(guest, "[ -s /tmp/asked.rc ]")
        assert "Restored " in finished and sh(guest, "cat /tmp/asked.rc").strip() == "0", finished
        assert compare(guest, check, "/restore/asked") == f"{entries} entries, 0 differences"
