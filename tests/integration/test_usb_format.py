"""`mkmedia format` on a plain image file (no loop device) makes a valid stick, and refuses an
image that is mounted through a loop device, the loop device itself and a disk of the saved
layout, --yes or not. The checkers are independent tools: sgdisk, blkid, e2fsck, mtools."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia import cli
from mkmedia.usb.partition import read_table
from rescue_runtime.layout import store
from rescue_runtime.layout.model import Disk, Layout
from rescue_runtime.run import run
from tests.loopfs import root_test_marks

pytestmark = root_test_marks(
    "loop devices need root",
    ("losetup", "sgdisk", "debugfs", "mdir", "grub-mkimage"),
    "losetup, sgdisk (gdisk), debugfs, mdir (mtools) or grub-mkimage missing",
)

MiB = 1024 * 1024


def mkmedia_format(
    tmp_path: Path, target: Path | str, *extra: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    os.environ["MKMEDIA_LOCK_FILE"] = str(tmp_path / "lock")
    capsys.readouterr()
    status = cli.main(
        [
            "format",
            str(target),
            "-c",
            str(tmp_path / "etc"),
            "--log-file",
            str(tmp_path / "format.log"),
            "--set",
            f"LAYOUT_DIR={tmp_path / 'layout'}",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def attached(image: Path) -> Iterator[str]:
    device = run(["losetup", "-f", "-P", "--show", image]).stdout.strip()
    try:
        yield device
    finally:
        run(["losetup", "-d", device], check=False)


def test_format_an_image_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "stick.img"
    status, out = mkmedia_format(tmp_path, image, "--size", "200M", "--yes", capsys=capsys)
    assert status == 0, out
    assert image.stat().st_size == 200 * MiB
    assert "No problems found" in run(["sgdisk", "-v", image]).stdout
    plan = read_table(image)
    assert plan is not None and plan.mode == "both"
    assert [p.role for p in plan.parts] == ["bios_grub", "esp", "data"]
    esp, data = plan.part("esp"), plan.data()
    assert esp is not None
    probe = run(["blkid", "-p", "-O", str(data.offset), "-o", "export", image]).stdout
    assert "LABEL=MKMEDIA-000" in probe and "TYPE=ext4" in probe
    run(["e2fsck", "-fn", f"{image}?offset={data.offset}"])
    listing = run(["mdir", "-i", f"{image}@@{esp.offset}", "::/EFI/BOOT"]).stdout
    assert "BOOTX64" in listing
    with open(image, "rb") as stream:
        mbr = stream.read(512)
    assert mbr[510:] == b"\x55\xaa" and b"GRUB" in mbr[:440]  # boot.img's message text
    assert mbr[0x1BE + 4] == 0xEE and mbr[0x1BE] == 0x80  # protective MBR, active for BIOS


def test_format_efi_only_has_no_bios_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "efi.img"
    status, out = mkmedia_format(tmp_path, image, "--size", "160M", "--yes", "--efi", capsys=capsys)
    assert status == 0, out
    plan = read_table(image)
    assert plan is not None and [p.role for p in plan.parts] == ["esp", "data"]


def test_refuses_a_mounted_image_and_its_loop_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "stick.img"
    status, out = mkmedia_format(tmp_path, image, "--size", "160M", "--yes", capsys=capsys)
    assert status == 0, out
    data = read_table(image)
    assert data is not None
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    part = data.data()
    # mount's own loop device over the data partition: how an image is usually mounted
    run(["mount", "-o", f"loop,offset={part.offset},sizelimit={part.size}", image, mountpoint])
    try:
        (loop,) = run(["losetup", "-n", "-O", "NAME", "-j", image]).stdout.split()
        before = digest(image)
        for target, extra in ((image, ()), (image, ("--force",)), (loop, ("--force",))):
            status, out = mkmedia_format(tmp_path, target, "--yes", *extra, capsys=capsys)
            assert status == 2, out
            assert "in use" in out and str(mountpoint) in out, out
        assert digest(image) == before
    finally:
        run(["umount", mountpoint], check=False)


def test_refuses_a_disk_of_the_saved_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    os.truncate(image, 160 * MiB)
    with attached(image) as loop:
        store.save(Layout(disks=[Disk(loop, 160 * MiB)]), tmp_path / "layout")
        before = digest(image)
        status, out = mkmedia_format(tmp_path, loop, "--yes", capsys=capsys)
        assert status == 2, out
        assert "saved layout" in out and loop in out, out
        assert digest(image) == before
        # --force overrules it (and the loop device's "not removable"), with a warning; the
        # block device path: pyparted on the device, file systems at their offsets
        status, out = mkmedia_format(tmp_path, loop, "--yes", "--force", capsys=capsys)
        assert status == 0, out
        assert "overrules" in out and "saved layout" in out
    plan = read_table(image)
    assert plan is not None and plan.mode == "both"
    probe = run(["blkid", "-p", "-O", str(plan.data().offset), "-o", "export", image]).stdout
    assert "LABEL=MKMEDIA-000" in probe
    assert "No problems found" in run(["sgdisk", "-v", image]).stdout
