"""A smaller disk: components shrink proportionally within what their data used at backup
time (plus the margin and each file system's minimum), aligned, and a disk too small is
refused with the numbers."""

from __future__ import annotations

import pytest

from rescue_runtime.backup.manifest import used_bytes, used_bytes_by_filesystem
from rescue_runtime.backup.sources import Source
from rescue_runtime.layout.model import (
    Disk,
    ExtParams,
    Filesystem,
    Layout,
    LogicalVolume,
    LuksDevice,
    MdArray,
    Partition,
    PhysicalVolume,
    VolumeGroup,
    XfsParams,
)
from rescue_runtime.recover.recreate import generate
from rescue_runtime.recover.resize import TooSmall, resize_layout
from rescue_runtime.recover.shrink import (
    FS_MINIMUM,
    MARGIN_BYTES,
    MARGIN_FRACTION,
    MiB,
    align_up,
    share,
)
from tests.unit.test_recover_resize import EXTENT, GiB, bios_lvm, check_partitions

ROOT = "fs:/dev/mapper/vgsys-root"
BOOT = "fs:/dev/vda1"


def with_swap(layout: Layout) -> Layout:
    layout.filesystems.append(Filesystem("/dev/mapper/vgsys-swap", "swap", "u3"))
    return layout


def need(used: int, minimum: int = 16 * MiB) -> int:
    """The rule as the module docstring states it (10% + 64 MiB, the file system's minimum)."""
    return max(used + int(used * MARGIN_FRACTION) + MARGIN_BYTES, minimum)


@pytest.mark.parametrize("table", ["dos", "gpt"])
def test_a_smaller_disk_shrinks_within_what_the_data_needs(table: str) -> None:
    saved = with_swap(bios_lvm(table))
    used = {ROOT: 1 * GiB, BOOT: 50 * MiB}
    shrunk, notes = resize_layout(saved, {"/dev/vda": 3 * GiB}, used=used)
    check_partitions(shrunk)
    disk = shrunk.disks[0]
    assert disk.size == 3 * GiB and disk.last_lba is None  # backup GPT at the new end
    boot, pv = disk.partitions
    if table == "gpt":
        assert boot.size == 256 * MiB  # the ESP is fixed
    else:
        assert need(50 * MiB) <= boot.size < 256 * MiB
    vg = shrunk.vgs[0]
    assert vg.size is not None and vg.size <= pv.size and vg.size % EXTENT == 0
    lvs = {lv.name: lv for lv in shrunk.lvs}
    assert sum(lv.size for lv in shrunk.lvs) <= vg.size
    assert all(lv.size % EXTENT == 0 for lv in shrunk.lvs)
    assert need(1 * GiB) <= lvs["root"].size < 2560 * MiB
    assert lvs["data"].size == 768 * MiB  # no file system of the backup: kept
    assert 64 * MiB <= lvs["swap"].size <= 256 * MiB
    root = shrunk.filesystem("/dev/mapper/vgsys-root")
    assert root is not None and root.ext is not None and root.ext.block_count is None
    assert " 655360" not in generate(shrunk).script  # mke2fs fills the smaller LV
    assert any("LV vgsys/root" in n and n.startswith("smaller disk:") for n in notes)


def test_shrinking_is_proportional_where_the_needs_allow() -> None:
    saved = with_swap(bios_lvm())
    used = {ROOT: 100 * MiB, BOOT: 10 * MiB}
    shrunk, _ = resize_layout(saved, {"/dev/vda": 3 * GiB}, used=used)
    before = {lv.name: lv.size for lv in saved.lvs}
    after = {lv.name: lv.size for lv in shrunk.lvs}
    # root and swap are well above their needs: the same fraction (to an extent)
    fraction = after["root"] / before["root"]
    assert 0.5 < fraction < 1
    assert abs(after["swap"] - before["swap"] * fraction) <= EXTENT


def test_a_disk_too_small_is_refused_with_the_numbers() -> None:
    saved = with_swap(bios_lvm())
    used = {ROOT: 1 * GiB, BOOT: 50 * MiB}
    with pytest.raises(TooSmall) as caught:
        resize_layout(saved, {"/dev/vda": 2 * GiB}, used=used)
    (short,) = caught.value.shortfalls
    pv_overhead = saved.disks[0].partitions[1].size - (saved.vgs[0].size or 0)
    lvs = align_up(need(1 * GiB), EXTENT) + 768 * MiB + 64 * MiB  # root, data (kept), swap
    expected = align_up(need(50 * MiB), MiB) + align_up(pv_overhead + lvs, MiB)
    assert short.needed == expected
    assert short.available == 2 * GiB - MiB  # the first partition starts at 1 MiB
    message = str(caught.value)
    assert f"needs {expected // MiB} MiB" in message and f"offers {2047} MiB" in message
    assert "ext4 used 1024 MiB + margin" in message and "Nothing was touched" in message


def test_without_used_bytes_nothing_shrinks_below_its_size() -> None:
    with pytest.raises(TooSmall, match="used space unknown, kept"):
        resize_layout(bios_lvm(), {"/dev/vda": 3 * GiB})


def test_a_smaller_disk_whose_partitions_fit_changes_only_the_end() -> None:
    saved = bios_lvm()
    saved.disks[0].size = 8 * GiB  # 2 GiB unpartitioned at the end
    shrunk, notes = resize_layout(saved, {"/dev/vda": 6 * GiB})
    assert shrunk.disks[0].partitions == saved.disks[0].partitions
    assert shrunk.lvs == saved.lvs and any("fit as they are" in n for n in notes)


def test_xfs_keeps_its_minimum() -> None:
    saved = bios_lvm()
    root = saved.filesystems[1]
    root.fstype, root.ext, root.xfs = "xfs", None, XfsParams(agcount=4, data_blocks=655360)
    shrunk, _ = resize_layout(saved, {"/dev/vda": 2 * GiB}, used={ROOT: 10 * MiB, BOOT: 1})
    lv = shrunk.lv("vgsys/root")
    assert lv is not None and lv.size >= FS_MINIMUM["xfs"]
    fs = shrunk.filesystem("/dev/mapper/vgsys-root")
    assert fs is not None and fs.xfs is not None and fs.xfs.agcount is None


@pytest.mark.parametrize(
    "sizes,needs,available",
    [
        ([100, 100, 100], [10, 90, 10], 200),
        ([400, 100, 20], [0, 0, 20], 260),
        ([50, 50], [50, 50], 100),
        ([64, 32, 8], [1, 30, 8], 48),
    ],
)
def test_share_fits_keeps_needs_and_is_proportional(
    sizes: list[int], needs: list[int], available: int
) -> None:
    new = share(sizes, needs, available, 1)
    assert new is not None
    assert sum(new) <= available
    assert all(n >= m for n, m in zip(new, needs, strict=True))
    assert all(n <= s for n, s in zip(new, sizes, strict=True))
    free = [i for i, (n, m) in enumerate(zip(new, needs, strict=True)) if n > m]
    ratios = [new[i] / sizes[i] for i in free]
    assert max(ratios, default=0) - min(ratios, default=0) < 0.05  # the same fraction


def test_share_refuses_needs_that_do_not_fit() -> None:
    assert share([100, 100], [60, 60], 110, 1) is None
    assert share([100, 100], [0, 0], 250, 1) == [100, 100]  # nothing to shrink


def test_the_manifest_records_used_bytes_per_file_system() -> None:
    sources = [
        Source("/", "mount", "/dev/sda2", "btrfs", "/@", used_bytes=5000),
        Source("/home", "mount", "/dev/sda2", "btrfs", "/@home", used_bytes=5000),
        Source("/boot", "mount", "/dev/sda1", "ext4", used_bytes=300),
        Source("/srv/x", "subvolume", "/dev/sda2", "btrfs", "@/srv/x"),
        Source("/mnt", "mount", "/dev/sdb1", "vfat", used_bytes=0),  # unknown
    ]
    recorded = used_bytes_by_filesystem(sources)
    assert recorded == {"fs:/dev/sda2": 5000, "fs:/dev/sda1": 300}
    assert used_bytes({"used_bytes": recorded}) == recorded
    older = {"filesystems": [s.__dict__ for s in sources if s.kind == "mount"]}
    assert used_bytes(older) == recorded  # older manifests: from their file system list


def raid_luks_lvm() -> Layout:
    """Two GPT disks of 1 GiB: ESP, then a RAID1 member; LUKS2 on the array, one PV, an ext4
    root LV (the UEFI + RAID1 + LUKS2 + LVM source's shape)."""
    disks = []
    for name in ("vda", "vdb"):
        esp = Partition(
            f"/dev/{name}1", 1, MiB, 128 * MiB, "ESP", flags=["esp"], disk=f"/dev/{name}"
        )
        member = Partition(
            f"/dev/{name}2",
            2,
            129 * MiB,
            GiB - 130 * MiB,
            "RAID",
            flags=["raid"],
            disk=f"/dev/{name}",
        )
        disks.append(Disk(f"/dev/{name}", GiB, table="gpt", partitions=[esp, member]))
    md_size = GiB - 130 * MiB - 2 * MiB
    luks_size = md_size - 16 * MiB
    return Layout(
        disks=disks,
        mds=[MdArray("/dev/md0", "raid1", members=["/dev/vda2", "/dev/vdb2"], size=md_size)],
        luks=[LuksDevice("/dev/mapper/crypt", "crypt", "/dev/md0", data_offset=16 * MiB)],
        pvs=[PhysicalVolume("/dev/mapper/crypt", "pv", "vg", luks_size)],
        vgs=[VolumeGroup("vg", "vgu", EXTENT, ["/dev/mapper/crypt"], size=luks_size - MiB)],
        lvs=[LogicalVolume("vg", "root", "lvu", 700 * MiB, "linear", "/dev/mapper/vg-root")],
        filesystems=[
            Filesystem(
                "/dev/mapper/vg-root",
                "ext4",
                "u",
                ext=ExtParams(block_size=4096, block_count=179200),
            ),
        ],
    )


def test_raid1_luks_lvm_shrinks_through_every_layer_onto_two_smaller_disks() -> None:
    saved = raid_luks_lvm()
    used = {"fs:/dev/mapper/vg-root": 150 * MiB}
    shrunk, _ = resize_layout(saved, {"/dev/vda": 640 * MiB, "/dev/vdb": 700 * MiB}, used=used)
    members = [p for p in shrunk.partitions() if "raid" in p.flags]
    assert members[0].size == members[1].size < saved.disks[0].partitions[1].size  # 640 MiB both
    assert [p.size for p in shrunk.partitions() if "esp" in p.flags] == [128 * MiB] * 2
    (md,) = shrunk.mds
    assert md.size == members[0].size - 2 * MiB  # the saved superblock overhead
    lv = shrunk.lv("vg/root")
    vg = shrunk.vgs[0]
    assert lv is not None and vg.size is not None
    assert need(150 * MiB) <= lv.size <= vg.size <= md.size - 16 * MiB - MiB
    with pytest.raises(TooSmall, match=r"LUKS crypt \+ 16 MiB header"):
        resize_layout(saved, {"/dev/vda": 256 * MiB, "/dev/vdb": 700 * MiB}, used=used)
