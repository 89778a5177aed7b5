"""What the storage guest's layout must hold, as plain functions over a captured Layout.

One set of checks for every producer: tests/vm/test_layout_guest.py applies them to the
capture made in the guest on the stacks it built (from these constants), and
tests/unit/test_layout_guest_replay.py to a capture replayed from the tool outputs recorded
in such a guest (tests/data/layout/guest).
"""

from __future__ import annotations

from typing import TypeVar

from rescue_runtime.layout.model import Layout

T = TypeVar("T")

MiB = 1024 * 1024

GPT_DISK_GUID = "6a1c0b8e-1111-4d2e-9a3b-0000000000aa"
GPT_BOOT_PARTUUID = "6a1c0b8e-1111-4d2e-9a3b-000000000001"
PV_UUID = "AAAAAA-1111-2222-3333-4444-5555-666666"
MD_UUID = "33333333:44444444:55555555:66666666"
LUKS_UUID = "22222222-3333-4444-5555-000000000001"
BTRFS_UUID = "44444444-5555-4666-8777-000000000001"


def fs_uuid(n: int) -> str:
    return f"11111111-2222-4333-8444-{n:012d}"


def by_path(items: list[T], attr: str = "path") -> dict[str, T]:
    return {getattr(i, attr): i for i in items}


def check_gpt_lvm(layout: Layout) -> None:
    vda = layout.disk("/dev/vda")
    assert vda is not None and vda.table == "gpt" and vda.size == 512 * MiB
    assert (vda.table_id or "").lower() == GPT_DISK_GUID
    boot, lvm_part = vda.partitions
    assert (boot.path, boot.number, boot.start, boot.size) == ("/dev/vda1", 1, MiB, 64 * MiB)
    assert boot.name == "boot" and (boot.uuid or "").lower() == GPT_BOOT_PARTUUID
    assert lvm_part.path == "/dev/vda2" and lvm_part.size == 400 * MiB
    assert "lvm" in lvm_part.flags and lvm_part.name == "lvm"
    pv = by_path(layout.pvs, "device")["/dev/vda2"]
    assert pv.uuid == PV_UUID and pv.vg == "vggpt"
    vg = by_path(layout.vgs, "name")["vggpt"]
    assert vg.extent_size == 4 * MiB and vg.pvs == ["/dev/vda2"]
    for name, size in (("root", 100), ("data", 120), ("swap", 32)):
        lv = layout.lv(f"vggpt/{name}")
        assert lv is not None, name
        assert (lv.size, lv.segtype, lv.devices) == (size * MiB, "linear", ["/dev/vda2"])
        assert lv.path == f"/dev/mapper/vggpt-{name}"
    fss = by_path(layout.filesystems, "device")
    root, data, swap = (fss[f"/dev/mapper/vggpt-{n}"] for n in ("root", "data", "swap"))
    assert (root.fstype, root.uuid, root.label) == ("ext4", fs_uuid(2), "gptroot")
    assert root.ext is not None and root.ext.block_size and "has_journal" in root.ext.features
    assert (data.fstype, data.uuid, data.label) == ("xfs", fs_uuid(3), "gptdata")
    assert data.xfs is not None and data.xfs.block_size == 4096
    assert (swap.fstype, swap.uuid, swap.label) == ("swap", fs_uuid(4), "gptswap")
    assert fss["/dev/vda1"].uuid == fs_uuid(1)
    mounts = {m.mountpoint: m for m in layout.mounts if m.fstype != "swap"}
    assert mounts["/mnt/gpt/root"].device == "/dev/mapper/vggpt-root"
    assert mounts["/mnt/gpt/data"].fstype == "xfs"
    assert mounts["/mnt/gpt/boot"].device == "/dev/vda1"
    swaps = [m for m in layout.mounts if m.fstype == "swap"]
    assert [(s.device, s.mounted) for s in swaps] == [("/dev/mapper/vggpt-swap", True)]


def check_mbr_logical(layout: Layout) -> None:
    for disk_path, label_id in (("/dev/vdb", "0x5eed0001"), ("/dev/vdc", "0x5eed0002")):
        disk = layout.disk(disk_path)
        assert disk is not None, f"{disk_path} (RAID member) missing"
        assert (disk.table, disk.table_id) == ("dos", label_id)
        # A kept disk keeps its whole table: vdc1 and vdc6 hold nothing mounted.
        rows = [(p.number, p.kind, p.type, p.size) for p in disk.partitions]
        assert rows == [
            (1, "primary", "83", 64 * MiB),
            (2, "extended", "5", 400 * MiB),
            (5, "logical", "fd", 300 * MiB),
            (6, "logical", "83", 64 * MiB),
        ]
        parts = by_path(disk.partitions)
        assert parts[f"{disk_path}1"].start == 2048 * 512
        # Logical partitions sit inside the extended one, each after its EBR.
        ext, p5, p6 = parts[f"{disk_path}2"], parts[f"{disk_path}5"], parts[f"{disk_path}6"]
        assert ext.start < p5.start < p6.start < ext.start + ext.size
        assert "raid" in p5.flags
    mounts = {m.mountpoint: m.device for m in layout.mounts}
    assert mounts["/mnt/mbr/p1"] == "/dev/vdb1" and mounts["/mnt/mbr/l6"] == "/dev/vdb6"
    assert by_path(layout.filesystems, "device")["/dev/vdb6"].uuid == fs_uuid(7)


def check_raid1_luks2_lvm(layout: Layout) -> None:
    (md,) = layout.mds
    assert (md.path, md.level, md.metadata, md.uuid) == ("/dev/md0", "raid1", "1.2", MD_UUID)
    assert md.members == ["/dev/vdb5", "/dev/vdc5"] and md.raid_devices == 2
    assert md.spares == [] and md.bitmap == "internal"
    assert md.name is not None and md.name.split(":")[-1] == "secure"
    # 300 MiB members less the 1.2 superblock area and the bitmap.
    assert md.size is not None and 280 * MiB < md.size < 300 * MiB
    (luks,) = layout.luks
    assert (luks.name, luks.path, luks.device) == ("secure", "/dev/mapper/secure", "/dev/md0")
    assert (luks.version, luks.uuid, luks.label) == (2, LUKS_UUID, "seclabel")
    assert (luks.cipher, luks.key_size, luks.pbkdf) == ("aes-xts-plain64", 512, "pbkdf2")
    assert luks.sector_size in (512, 4096) and luks.data_offset == 16 * MiB
    pv = by_path(layout.pvs, "device")["/dev/mapper/secure"]
    assert pv.vg == "vgsec"
    assert by_path(layout.vgs, "name")["vgsec"].pvs == ["/dev/mapper/secure"]
    home = layout.lv("vgsec/home")
    assert home is not None and home.size == 64 * MiB
    assert home.devices == ["/dev/mapper/secure"]
    mount = layout.mount("/mnt/sec/home")
    assert mount is not None and mount.device == "/dev/mapper/vgsec-home"


def check_nvme_thin_striped_raid1(layout: Layout) -> None:
    nvme = layout.disk("/dev/nvme0n1")
    assert nvme is not None and nvme.table == "gpt" and nvme.serial == "mkmedia-nvme0"
    assert [p.path for p in nvme.partitions] == ["/dev/nvme0n1p1", "/dev/nvme0n1p2"]
    assert [p.number for p in nvme.partitions] == [1, 2]
    vdd = layout.disk("/dev/vdd")
    assert vdd is not None and vdd.table is None and vdd.partitions == []
    # udev's lvm-pv-uuid-* link names the PV on it, not the disk.
    assert vdd.by_id == ["/dev/disk/by-id/virtio-mkmedia-disk3"]
    vg = by_path(layout.vgs, "name")["vgthin"]
    assert sorted(vg.pvs) == ["/dev/nvme0n1p2", "/dev/vdd"]
    pool = layout.lv("vgthin/pool")
    assert pool is not None and pool.segtype == "thin-pool" and pool.size == 96 * MiB
    assert pool.chunk_size == 64 * 1024 and pool.metadata_size == 4 * MiB
    assert pool.devices == ["/dev/vdd"]  # its hidden data and metadata LVs' PV
    for name, size in (("thin1", 200), ("thin2", 100)):
        lv = layout.lv(f"vgthin/{name}")
        assert lv is not None and (lv.segtype, lv.pool, lv.size) == ("thin", "pool", size * MiB)
    stripe = layout.lv("vgthin/stripe")
    assert stripe is not None and stripe.segtype == "striped"
    assert (stripe.stripes, stripe.stripe_size, stripe.size) == (2, 64 * 1024, 32 * MiB)
    assert sorted(stripe.devices) == ["/dev/nvme0n1p2", "/dev/vdd"]
    mirror = layout.lv("vgthin/mirror")
    assert mirror is not None and (mirror.segtype, mirror.mirrors) == ("raid1", 2)
    assert mirror.size == 16 * MiB and mirror.region_size == 2 * MiB
    assert sorted(mirror.devices) == ["/dev/nvme0n1p2", "/dev/vdd"]  # one image on each
    # Hidden sub-LVs ([pool_tdata], [mirror_rimage_0], ...) are not LVs to recreate.
    assert not [lv for lv in layout.lvs if "_t" in lv.name or "_r" in lv.name]
    fss = by_path(layout.filesystems, "device")
    assert fss["/dev/mapper/vgthin-thin1"].uuid == fs_uuid(8)
    assert fss["/dev/mapper/vgthin-thin2"].fstype == "xfs"


def check_btrfs(layout: Layout) -> None:
    fs = by_path(layout.filesystems, "device")["/dev/nvme0n1p1"]
    assert (fs.fstype, fs.uuid, fs.label) == ("btrfs", BTRFS_UUID, "btr")
    assert fs.btrfs is not None and fs.btrfs.devices == ["/dev/nvme0n1p1"]
    subs = {s.path: s for s in fs.btrfs.subvolumes}
    assert sorted(subs) == ["@", "@/nested", "@home"]
    # Ids count up from 256 in creation order; nested sits in @.
    assert [subs[p].id for p in ("@", "@home", "@/nested")] == [256, 257, 258]
    assert subs["@/nested"].parent == 256 and subs["@home"].parent == 5
    assert fs.btrfs.default_subvolume == 256 and fs.btrfs.default_subvolume_path == "@"
    assert fs.btrfs.data_profile == "single"
    default_mount = layout.mount("/mnt/btr")
    home_mount = layout.mount("/mnt/btr-home")
    assert default_mount is not None and home_mount is not None
    assert default_mount.fsroot == "/@" and home_mount.fsroot == "/@home"


CHECKS = {
    "gpt_lvm": check_gpt_lvm,
    "mbr_logical": check_mbr_logical,
    "raid1_luks2_lvm": check_raid1_luks2_lvm,
    "nvme_thin_striped_raid1": check_nvme_thin_striped_raid1,
    "btrfs": check_btrfs,
}
