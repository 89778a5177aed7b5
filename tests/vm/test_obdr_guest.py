"""OUTPUT=OBDR end to end, in one boot: the tape boots as a CD and restores from itself.

On the host, `mkmedia mkbackup` with OUTPUT=OBDR writes a SIMH tape image (TAPE_DEVICE) of a
small file system of the test's own (tests/capture_root.py): checked record by record (20 ×
512 bytes, the ISO in 2048-byte records byte-identical to the output ISO, a filemark, the
manifest, the backup records, two filemarks) and by `mkmedia tape verify`. The ISO is then
cut out of the tape image and booted in QEMU as the CD an OBDR drive emulates, with the tape
image attached as a read-only disk (read as the .tap byte stream, the path the rescue system
takes for a real drive's records too): `mkmedia recover --demo /tmp/r` finds the tape by its
label, streams the backup from it, and the restored files match (content, modes, owners,
symlink). A real drive's CD emulation and the HP mode-page switch cannot be exercised here.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mkmedia.qemu import Machine
from rescue_runtime.tape.label import parse
from tests.loopfs import MiB, loop_filesystem
from tests.rescue_build import REPO, build_media, rescue_guest, sh
from tests.tapes import tape_records

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="the small system is a loop device (root)"),
]

FILES = ("hello.txt", "data/blob.bin", "dir with space/note", "data/private")


def make_small_system(root: Path) -> dict[str, tuple[str, str]]:
    """A few files; returns (sha256, "mode uid gid") by relative path."""
    (root / "data").mkdir()
    (root / "dir with space").mkdir()
    (root / "hello.txt").write_text("hello from the tape\n")
    (root / "data" / "blob.bin").write_bytes(random.Random(7).randbytes(400 * 1024))
    (root / "dir with space" / "note").write_text("spaces survive\n")
    (root / "data" / "private").write_text("secret\n")
    os.chmod(root / "data" / "private", 0o600)
    os.chown(root / "data" / "private", 1234, 5678)
    (root / "data" / "link").symlink_to("blob.bin")
    result = {}
    for path in FILES:
        info = os.stat(root / path)
        digest = hashlib.sha256((root / path).read_bytes()).hexdigest()
        result[path] = (digest, f"{info.st_mode & 0o7777:o} {info.st_uid} {info.st_gid}")
    return result


def test_obdr_tape_boots_and_restores_from_itself(tmp_path: Path) -> None:
    work = tmp_path
    image = work / "obdr.tap"
    mnt = work / "system"
    with loop_filesystem(work / "system.img", mnt, "ext4", size=32 * MiB) as device:
        expected = make_small_system(mnt)
        out = build_media(
            work,
            output="OBDR",
            workflow="mkbackup",
            sets=(
                f"TAPE_DEVICE={image}",
                "BACKUP=NETFS",
                f"BACKUP_URL=tape://{image}",
                "TAPE_BLOCK_SIZE=16384",
                "BOOT_DEFAULT=rescue",
            ),
            command=(sys.executable, "-m", "tests.capture_root", str(mnt), device),
        )
    manifest = json.loads((out / "manifest.json").read_text())
    kinds = {a["kind"]: a for a in manifest["artifacts"]}
    iso = Path(kinds["iso"]["path"])
    assert kinds["tape"]["path"] == str(image)
    assert kinds["tape"]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()

    # the record structure
    records = tape_records(image)
    assert all(len(r) == 512 for r in records[:20])
    label = parse(records[0], str(image))
    assert label is not None and label.kind == "obdr" and label.block_size == 16384
    assert all(r == bytes(512) for r in records[1:20])
    iso_end = records.index(b"", 20)
    assert all(len(r) == 2048 for r in records[20:iso_end])
    cut = b"".join(records[20:iso_end])
    assert cut == iso.read_bytes()
    manifest_end = records.index(b"", iso_end + 1)
    backup = json.loads(b"".join(records[iso_end + 1 : manifest_end]))
    stream = records[manifest_end + 1 : -2]
    assert records[-2:] == [b"", b""]
    assert len(stream) == -(-backup["volumes"][0]["size"] // 16384)
    assert all(len(r) == 16384 for r in stream)

    # mkmedia tape verify, against the output manifest
    env = dict(os.environ, MKMEDIA_LOCK_FILE=str(work / "lock"))
    verified = subprocess.run(
        [sys.executable, "-m", "mkmedia", "tape", "-c", str(work / "etc"), "verify",
         str(image), "--manifest", str(out / "manifest.json")],
        capture_output=True, text=True, cwd=REPO, env=env, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "El Torito boot record, sha256 as its label and output manifest" in verified.stdout

    # one boot: the ISO cut from the tape as the emulated CD, the tape image as a disk
    cut_iso = work / "cut-from-tape.iso"
    cut_iso.write_bytes(cut)
    disk = [
        "-drive", f"file={image},if=none,id=tape,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=tape,serial=obdr-tape",
    ]  # fmt: skip
    machine = Machine(firmware="bios", cdrom=cut_iso, boot_order="d", extra=disk)
    with rescue_guest(machine, tmp_path / "console.log", extra_seconds=900) as guest:
        sh(guest, "dmesg -n 1; udevadm settle --timeout=30 || true")
        out_text = sh(guest, "mkmedia recover --demo /tmp/r")
        assert "Restored " in out_text and "no disk was touched" in out_text, out_text
        tape_disk = sh(guest, "readlink -f /sys/block/vd*").strip().rsplit("/", 1)[1]
        assert f"/dev/{tape_disk}" in out_text.split("never a recover target):")[1], out_text
        for path, (digest, meta) in expected.items():
            got = sh(guest, f"sha256sum '/tmp/r/{path}'; stat -c '%a %u %g' '/tmp/r/{path}'")
            assert got.split()[0] == digest and got.splitlines()[1].strip() == meta, path
        assert sh(guest, "readlink /tmp/r/data/link").strip() == "blob.bin"
