"""The initramfs decision for a new controller: the root disk's driver chain (from sysfs)
against the module list of the restored initramfs, read from real cpio archives written by
the project's cpio writer (an early microcode archive, then a zstd or gzip one).

The sysfs trees are made here: an NVMe or SATA controller cannot exist on this machine."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from mkmedia.initrd.compress import compressing
from mkmedia.initrd.cpio import CpioWriter, Entry
from rescue_runtime.layout.model import Disk, Filesystem, Layout, Mount, Partition
from rescue_runtime.recover.finalize_initramfs import (
    disk_modules,
    driver_reasons,
    early_disks,
    walk_initramfs,
)

VERSION = "9.9.9-test-amd64"  # a made-up kernel of the made-up restored system


def cpio(names: list[str], compression: str = "none") -> bytes:
    out = io.BytesIO()
    with compressing(out, compression) as sink:
        writer = CpioWriter(sink)
        for ino, name in enumerate(names, 1):
            writer.add(Entry(name=name, mode=0o100644, ino=ino))
        writer.finish()
    return out.getvalue()


def initramfs(target: Path, modules: list[str], compression: str) -> Path:
    early = cpio(["kernel", "kernel/x86", "kernel/x86/microcode/GenuineIntel.bin"])
    names = ["init", "usr/lib/modules", *(f"usr/lib/modules/{VERSION}/kernel/{m}" for m in modules)]
    path = target / "boot" / f"initrd.img-{VERSION}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(early + b"\0" * 512 + cpio(names, compression))
    return path


def restored_kernel(target: Path, modules: list[str], builtin: Sequence[str] = ()) -> None:
    root = target / "lib/modules" / VERSION
    for module in modules:
        (root / "kernel" / module).parent.mkdir(parents=True, exist_ok=True)
        (root / "kernel" / module).write_bytes(b"")
    root.mkdir(parents=True, exist_ok=True)
    (root / "modules.builtin").write_text("".join(f"kernel/{b}\n" for b in builtin))


def sysfs_disk(sys: Path, disk: str, chain: list[tuple[str, str, str | None]]) -> Path:
    """/sys/block/DISK/device -> a device path whose levels have (dir, driver, module)."""
    level = sys / "devices"
    for directory, driver, module in chain:
        level = level / directory
        level.mkdir(parents=True)
        drv = sys / "bus/x/drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        os.symlink(drv, level / "driver")
        if module and not (drv / "module").exists():
            (sys / "module" / module).mkdir(parents=True, exist_ok=True)
            os.symlink(sys / "module" / module, drv / "module")
    (sys / "block" / disk).mkdir(parents=True)
    os.symlink(level, sys / "block" / disk / "device")
    return sys / "block"


NVME_CHAIN = [
    ("pci0000:00", "pcieport", None),  # built in: no module link
    ("0000:00:05.0", "nvme", "nvme"),
    ("nvme0", "nvme-core-x", None),  # no such module in the kernel: needs nothing
]


def root_layout(disk: str = "/dev/nvme0n1") -> Layout:
    part = Partition(path=f"{disk}p1", number=1, start=1 << 20, size=1 << 30, type="83", disk=disk)
    return Layout(
        disks=[Disk(path=disk, size=2 << 30, partitions=[part]), Disk(path="/dev/vdz", size=1)],
        filesystems=[Filesystem(device=part.path, fstype="ext4")],
        mounts=[Mount(mountpoint="/", device=part.path, fstype="ext4")],
    )


def test_walk_reads_early_and_compressed_archives(tmp_path: Path) -> None:
    for compression in ("zstd", "gzip"):
        path = initramfs(tmp_path / compression, ["drivers/nvme/host/nvme.ko.zst"], compression)
        names = walk_initramfs(path)
        assert "kernel/x86/microcode/GenuineIntel.bin" in names
        assert f"usr/lib/modules/{VERSION}/kernel/drivers/nvme/host/nvme.ko.zst" in names
        assert "TRAILER!!!" not in names


def test_the_root_disks_and_their_driver_chain(tmp_path: Path) -> None:
    assert [d.path for d in early_disks(root_layout())] == ["/dev/nvme0n1"]  # not /dev/vdz
    sys_block = sysfs_disk(tmp_path / "sys", "nvme0n1", NVME_CHAIN)
    assert disk_modules("/dev/nvme0n1", sys_block) == ["nvme_core_x", "nvme", "pcieport"]
    assert disk_modules("/dev/sdq", sys_block) == []


@pytest.mark.parametrize(
    ("in_initramfs", "builtin", "rebuild"),
    [
        (["drivers/block/virtio_blk.ko"], [], True),  # the old controller's driver only
        (["drivers/block/virtio_blk.ko", "drivers/nvme/host/nvme.ko.zst"], [], False),
        ([], ["drivers/nvme/host/nvme.ko"], False),  # the restored kernel builds it in
    ],
)
def test_rebuild_only_when_the_root_disks_driver_is_missing(
    tmp_path: Path, in_initramfs: list[str], builtin: list[str], rebuild: bool
) -> None:
    target = tmp_path / "target"
    initramfs(target, in_initramfs, "zstd")
    restored_kernel(
        target, ["drivers/nvme/host/nvme.ko.zst", "drivers/block/virtio_blk.ko"], builtin
    )
    sys_block = sysfs_disk(tmp_path / "sys", "nvme0n1", NVME_CHAIN)
    reasons, notes = driver_reasons(
        root_layout(), target, sys_block=sys_block, lister=lambda t, p: walk_initramfs(p)
    )
    if rebuild:
        assert reasons == [
            f"the initramfs initrd.img-{VERSION} lacks nvme, the driver of /dev/nvme0n1"
        ]
        assert notes == []
    else:
        assert reasons == [] and len(notes) == 1, notes


def test_a_sata_disk_needs_sd_mod_and_ahci(tmp_path: Path) -> None:
    target = tmp_path / "target"
    initramfs(target, ["drivers/block/virtio_blk.ko"], "gzip")
    restored_kernel(target, ["drivers/scsi/sd_mod.ko", "drivers/ata/ahci.ko"])
    chain = [
        ("0000:00:1f.2", "ahci", "ahci"),
        ("ata1", "ata-port", None),
        ("0:0:0:0", "sd", None),  # built into the rescue kernel: sd_mod by DRIVER_MODULES
    ]
    sys_block = sysfs_disk(tmp_path / "sys", "sda", chain)
    assert disk_modules("/dev/sda", sys_block) == ["sd_mod", "ata_port", "ahci"]
    reasons, _ = driver_reasons(
        root_layout("/dev/sda"), target, sys_block=sys_block, lister=lambda t, p: walk_initramfs(p)
    )
    assert reasons == [
        f"the initramfs initrd.img-{VERSION} lacks ahci, sd_mod, the driver of /dev/sda"
    ]


def test_an_unreadable_initramfs_is_a_reason_to_rebuild(tmp_path: Path) -> None:
    target = tmp_path / "target"
    restored_kernel(target, ["drivers/nvme/host/nvme.ko"])
    (target / "boot").mkdir()
    (target / "boot" / f"initrd.img-{VERSION}").write_bytes(b"BZh91AY&SY not ours")
    sys_block = sysfs_disk(tmp_path / "sys", "nvme0n1", NVME_CHAIN)
    reasons, _ = driver_reasons(
        root_layout(), target, sys_block=sys_block, lister=lambda t, p: walk_initramfs(p)
    )
    assert len(reasons) == 1 and "cannot be read" in reasons[0] and "425a6839" in reasons[0]


def test_the_restored_systems_lsinitramfs_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With lsinitramfs in the restored system its listing counts (run in a chroot; faked
    here: a chroot needs root); when it fails, our own walk of the archives does."""
    from rescue_runtime.recover import finalize_initramfs
    from rescue_runtime.run import Result

    target = tmp_path / "target"
    image = initramfs(target, ["drivers/block/virtio_blk.ko"], "zstd")
    (target / "usr/bin").mkdir(parents=True)
    (target / "usr/bin/lsinitramfs").write_text("#!/bin/sh\n")
    calls: list[list[str]] = []
    listing = f"usr/lib/modules/{VERSION}/kernel/drivers/nvme/host/nvme.ko\n"

    def fake_run(argv: list[str], **kwargs: object) -> Result:
        calls.append([str(a) for a in argv])
        return Result(argv, status, listing, "")

    monkeypatch.setattr(finalize_initramfs, "run", fake_run)
    status = 0
    names = finalize_initramfs.initramfs_files(target, image)
    assert calls == [["chroot", str(target), "/usr/bin/lsinitramfs", f"/boot/{image.name}"]]
    assert names == [listing.strip()]
    status = 1
    assert any(
        n.endswith("virtio_blk.ko") for n in finalize_initramfs.initramfs_files(target, image)
    )


def test_the_same_disks_on_the_same_transport_are_not_listed_again(tmp_path: Path) -> None:
    """Listing an initramfs costs time under emulation: a root disk under its old name on its
    old transport needs no check; another name or another transport does."""
    target = tmp_path / "target"
    initramfs(target, [], "zstd")
    restored_kernel(target, ["drivers/nvme/host/nvme.ko"])
    sys_block = sysfs_disk(tmp_path / "sys", "nvme0n1", NVME_CHAIN)
    layout = root_layout()
    layout.disks[0].transport = "nvme"
    listed: list[Path] = []

    def lister(t: Path, image: Path) -> list[str]:
        listed.append(image)
        return walk_initramfs(image)

    def check(renamed: set[str], now: str) -> list[str]:
        reasons, notes = driver_reasons(
            layout, target, renamed, sys_block=sys_block, lister=lister, transport_of=lambda d: now
        )
        return reasons or notes

    assert check(set(), "nvme") == [
        "initramfs drivers: the root disks keep their names and transport (nvme)"
    ]
    assert listed == []
    assert check({"/dev/nvme0n1"}, "nvme")[0].endswith("lacks nvme, the driver of /dev/nvme0n1")
    assert check(set(), "sata")[0].endswith("lacks nvme, the driver of /dev/nvme0n1")
    assert len(listed) == 2
