"""A larger disk: partitions, the VG's LVs and the file systems grow with it, aligned and
without overlap; smaller disks are verify's refusal (tests/unit/test_recover_verify.py)."""

from __future__ import annotations

import itertools

import pytest

from rescue_runtime.layout.model import (
    Disk,
    ExtParams,
    Filesystem,
    Layout,
    LogicalVolume,
    Partition,
    PhysicalVolume,
    VolumeGroup,
)
from rescue_runtime.recover.recreate import generate
from rescue_runtime.recover.resize import MiB, resize_layout, usable_end

GiB = 1 << 30
EXTENT = 4 * MiB


def bios_lvm(table: str = "dos") -> Layout:
    """The BIOS + LVM source's shape: /boot, then one PV with root, data and swap."""
    boot = Partition("/dev/vda1", 1, MiB, 256 * MiB, "83", flags=["boot"], disk="/dev/vda")
    pv_part = Partition("/dev/vda2", 2, 257 * MiB, 6 * GiB - 258 * MiB, "8e", disk="/dev/vda")
    if table == "gpt":
        boot.type, boot.flags = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", ["esp"]
    lvs = [
        LogicalVolume("vgsys", name, f"uuid-{name}", size, "linear", f"/dev/mapper/vgsys-{name}")
        for name, size in (("root", 2560 * MiB), ("data", 768 * MiB), ("swap", 256 * MiB))
    ]
    return Layout(
        disks=[Disk("/dev/vda", 6 * GiB, table=table, partitions=[boot, pv_part])],
        pvs=[PhysicalVolume("/dev/vda2", "pv-uuid", "vgsys", pv_part.size)],
        vgs=[VolumeGroup("vgsys", "vg-uuid", EXTENT, ["/dev/vda2"], size=pv_part.size - MiB)],
        lvs=lvs,
        filesystems=[
            Filesystem(
                "/dev/vda1", "ext4", "u1", ext=ExtParams(block_size=4096, block_count=65536)
            ),
            Filesystem(
                "/dev/mapper/vgsys-root",
                "ext4",
                "u2",
                ext=ExtParams(block_size=4096, block_count=655360),
            ),
        ],
    )


def check_partitions(layout: Layout) -> None:
    disk = layout.disks[0]
    parts = sorted(disk.partitions, key=lambda p: p.start)
    for before, after in itertools.pairwise(parts):
        assert before.start + before.size <= after.start
    for part in parts:
        assert part.start % MiB == 0 and part.size % MiB == 0
    assert parts[-1].start + parts[-1].size <= usable_end(disk, disk.size)


def test_half_as_large_again_grows_everything_proportionally() -> None:
    saved = bios_lvm()
    grown, notes = resize_layout(saved, {"/dev/vda": 9 * GiB})
    check_partitions(grown)
    boot, pv = grown.disks[0].partitions
    assert boot.size > 256 * MiB and pv.size > saved.disks[0].partitions[1].size * 1.4
    vg = grown.vgs[0]
    assert vg.size is not None
    assert sum(lv.size for lv in grown.lvs) <= vg.size
    for old, new in zip(saved.lvs, grown.lvs, strict=True):
        assert new.size % EXTENT == 0 and 1.4 < new.size / old.size < 1.6
    assert all(fs.ext is not None and fs.ext.block_count is None for fs in grown.filesystems)
    assert " 655360" not in generate(grown).script  # mke2fs fills the grown LV
    assert any("LV vgsys/root" in n for n in notes)
    assert saved.lvs[0].size == 2560 * MiB  # the saved layout itself is untouched


def test_last_gives_the_space_to_the_last_partition_and_leaves_the_lvs() -> None:
    grown, notes = resize_layout(bios_lvm(), {"/dev/vda": 9 * GiB}, "last")
    check_partitions(grown)
    boot, pv = grown.disks[0].partitions
    assert boot.size == 256 * MiB and pv.size > 8 * GiB
    assert [lv.size for lv in grown.lvs] == [lv.size for lv in bios_lvm().lvs]
    assert any("left free" in n for n in notes)


@pytest.mark.parametrize("mode", ["none", "proportional"])
def test_none_changes_nothing_but_the_gpt_end_and_the_esp_stays(mode: str) -> None:
    grown, _ = resize_layout(bios_lvm("gpt"), {"/dev/vda": 9 * GiB}, mode)
    check_partitions(grown)
    esp, pv = grown.disks[0].partitions
    assert esp.size == 256 * MiB  # fixed in every mode
    assert grown.disks[0].last_lba is None
    assert (pv.size > 8 * GiB) == (mode == "proportional")


def test_the_same_size_changes_nothing() -> None:
    saved = bios_lvm()
    same, notes = resize_layout(saved, {"/dev/vda": 6 * GiB})
    assert same == saved and notes == []
