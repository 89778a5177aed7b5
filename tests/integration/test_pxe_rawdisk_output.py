"""OUTPUT=PXE, RAWDISK and RAMDISK written with the real tools (no QEMU): reproducible to the
byte, a GPT that an independent checker accepts, artifacts in the manifest. Booting them is in
tests/vm/test_pxe_rawdisk.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mkmedia.emit import MediaSpec, gpt, rawdisk
from mkmedia.emit.pxe import write_pxe
from mkmedia.emit.ramdisk import RamdiskEmitter
from mkmedia.kernel.choice import Kernel
from mkmedia.session.artifacts import sha256_file
from rescue_runtime.run import require, run
from tests.rescue_build import build_media

pytestmark = pytest.mark.integration

EPOCH = 1_700_000_000
MAC = "52:54:00:12:34:56"


@pytest.fixture
def small_initrd(tmp_path: Path) -> Path:
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(b"not a real initrd, only bytes to carry\n" * 4096)
    return initrd


def tree_listing(root: Path) -> dict[str, tuple[int, int, str]]:
    """relative path -> (mode, mtime, sha256 or '' for a directory), for every entry."""
    listing = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = sha256_file(path) if stat.S_ISREG(info.st_mode) else ""
        listing[str(path.relative_to(root))] = (info.st_mode, int(info.st_mtime), digest)
    return listing


def pxe_tree(root: Path, kernel: Path, initrd: Path, work: Path) -> list[Path]:
    artifacts = write_pxe(
        root,
        kernel=kernel,
        initrd=initrd,
        host="vmtest",
        host_dir="vmtest",
        clients=[MAC, "192.0.2.5"],
        kernel_cmdline="quiet",
        boot_default="rescue",
        boot_timeout=1,
        source_date_epoch=EPOCH,
        work_dir=work,
    )
    return [a.path for a in artifacts]


def test_pxe_tree_is_reproducible(host_kernel: Kernel, small_initrd: Path, tmp_path: Path) -> None:
    first = pxe_tree(tmp_path / "one", host_kernel.image, small_initrd, tmp_path / "w1")
    os.utime(small_initrd)  # a newer source file changes nothing in the tree
    second = pxe_tree(tmp_path / "two", host_kernel.image, small_initrd, tmp_path / "w2")
    one, two = tree_listing(tmp_path / "one"), tree_listing(tmp_path / "two")
    assert one == two
    assert {mtime for _, mtime, _ in one.values()} == {EPOCH}
    assert len(first) == len(second) == len([v for v in one.values() if v[2]])
    for name in (
        "pxelinux.0",
        "ldlinux.c32",
        "menu.c32",
        "bootx64.efi",
        "pxelinux.cfg/01-52-54-00-12-34-56",
        "pxelinux.cfg/C0000205",
        "pxelinux.cfg/default",
        "grub/grub.cfg-01-52-54-00-12-34-56",
        "grub/grub.cfg-C0000205",
        "grub/grub.cfg",
        "vmtest/vmlinuz",
        "vmtest/initrd",
    ):
        assert name in one, name
    host_menu = (tmp_path / "one" / "pxelinux.cfg" / "01-52-54-00-12-34-56").read_text()
    assert "LINUX vmtest/vmlinuz" in host_menu and "MENU DEFAULT" in host_menu
    assert "vmtest/vmlinuz" not in (tmp_path / "one" / "pxelinux.cfg" / "default").read_text()
    assert "linux /vmtest/vmlinuz" in (tmp_path / "one" / "grub" / "grub.cfg-C0000205").read_text()


def write_disk(directory: Path, kernel: Path, initrd: Path) -> list[Path]:
    directory.mkdir()
    artifacts = rawdisk.write_rawdisk(
        directory,
        "vmtest",
        kernel=kernel,
        initrd=initrd,
        host="vmtest",
        formats=("raw", "qcow2"),
        boot_default="rescue",
        boot_timeout=1,
        source_date_epoch=EPOCH,
        work_dir=directory / "work",
    )
    return [a.path for a in artifacts]


def test_rawdisk_is_reproducible_and_a_valid_gpt(
    host_kernel: Kernel, small_initrd: Path, tmp_path: Path
) -> None:
    first = write_disk(tmp_path / "one", host_kernel.image, small_initrd)
    second = write_disk(tmp_path / "two", host_kernel.image, small_initrd)
    assert [p.name for p in first] == ["vmtest.img", "vmtest.qcow2"]
    assert [sha256_file(p) for p in first] == [sha256_file(p) for p in second]
    raw = first[0]
    sgdisk = require("sgdisk", package="gdisk")
    verdict = run([sgdisk, "-v", str(raw)]).stdout
    assert "No problems found" in verdict, verdict
    listing = run([sgdisk, "-i", "1", str(raw)]).stdout
    assert "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" in listing  # EFI system partition
    head = raw.read_bytes()[:512]
    assert head[:440] == rawdisk.GPTMBR.read_bytes()[:440] and head[450] == 0xEE
    offset = f"{raw}@@{rawdisk.PARTITION_START * gpt.SECTOR}"
    files = run(
        ["mdir", "-a", "-b", "-/", "-i", offset, "::/"], env={"MTOOLS_SKIP_CHECK": "1"}
    ).stdout
    for name in ("EFI/BOOT/BOOTX64.EFI", "boot/vmlinuz", "boot/initrd", "syslinux/ldlinux.sys"):
        assert f"::/{name}" in files, files
    qemu_img = require("qemu-img", package="qemu-utils")
    run([qemu_img, "compare", "-q", str(raw), str(first[1])])  # the qcow2 holds the same disk


def test_ramdisk_writes_the_kernel_command_line(
    host_kernel: Kernel, small_initrd: Path, tmp_path: Path
) -> None:
    spec = MediaSpec(
        directory=tmp_path,
        prefix="vmtest",
        host="vmtest",
        kernel_cmdline="quiet mkmedia.test=1",
        consoles=("tty0", "ttyS0,115200"),
        boot_default="local",
        boot_timeout=1,
    )
    written = RamdiskEmitter(spec).write(
        kernel=host_kernel.image, initrd=small_initrd, work_dir=tmp_path / "w"
    )
    assert [a.kind for a in written] == ["kernel", "initrd", "cmdline"]
    text = (tmp_path / "vmtest-cmdline").read_text()
    assert text == "quiet mkmedia.test=1 console=tty0 console=ttyS0,115200\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="a whole build needs root (chroot, device nodes)")
def test_pxe_build_to_tftp_url_is_reproducible(tmp_path: Path) -> None:
    """Two builds with the same SOURCE_DATE_EPOCH, one into PXE_TFTP_URL: the same tree; the
    manifest lists every file of it with size and sha256."""
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    sets = (f"PXE_CLIENTS={MAC}", "BOOT_DEFAULT=rescue")
    out = build_media(tmp_path / "a", output="PXE", sets=(*sets, f"PXE_TFTP_URL=file://{tftp}"))
    local = build_media(tmp_path / "b", output="PXE", sets=sets)
    manifest = json.loads((out / "manifest.json").read_text())
    pxe = {a["path"]: a for a in manifest["artifacts"] if a["kind"] == "pxe"}
    listing = tree_listing(tftp)
    assert set(pxe) == {str(tftp / name) for name, v in listing.items() if v[2]}
    for path, artifact in pxe.items():
        assert artifact["size"] == Path(path).stat().st_size
        assert artifact["sha256"] == sha256_file(Path(path))
    assert not (out / "pxelinux.0").exists(), "the tree went to PXE_TFTP_URL only"
    theirs = {k: v for k, v in tree_listing(local).items() if not k.startswith("manifest")}
    theirs = {k: v for k, v in theirs.items() if not k.startswith("rescue-report")}
    assert listing == theirs
