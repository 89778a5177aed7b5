"""The layout parsers on outputs recorded inside the QEMU storage guest (guest-* fixtures,
taken from tests/data/layout/guest/replay.json): lvm2 2.03.16, mdadm 4.2, cryptsetup 2.6.1,
btrfs-progs 6.2, xfsprogs 6.1, util-linux 2.38.1 as Debian 12 ships them. The expected
values are what tests/vm/test_layout_guest.py created (its UUIDs and sizes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rescue_runtime.layout.model import MdArray
from rescue_runtime.layout.parse import btrfs, cryptsetup, lvm, mdadm, sfdisk, xfs
from tests.layout_checks import LUKS_UUID, MD_UUID, PV_UUID

DATA = Path(__file__).resolve().parents[1] / "data" / "layout"
MiB = 1024 * 1024


def text(rel: str) -> str:
    return (DATA / rel).read_text()


def test_lvm_pvs_vgs_recorded() -> None:
    pvs = {pv.device: pv for pv in lvm.parse_pvs(text("lvm/guest-pvs.json"))}
    assert set(pvs) == {"/dev/mapper/secure", "/dev/nvme0n1p2", "/dev/vda2", "/dev/vdd"}
    assert pvs["/dev/vda2"].uuid == PV_UUID and pvs["/dev/vda2"].vg == "vggpt"
    assert all(pv.pe_start == MiB and pv.metadata_copies == 1 for pv in pvs.values())
    vgs = {vg.name: vg for vg in lvm.parse_vgs(text("lvm/guest-vgs.json"))}
    assert set(vgs) == {"vggpt", "vgsec", "vgthin"}
    assert all(vg.extent_size == 4 * MiB and vg.tags == [] for vg in vgs.values())


def test_lvm_lvs_recorded_hidden_sub_lvs() -> None:
    lvs = {lv.full_name: lv for lv in lvm.parse_lvs(text("lvm/guest-lvs-thin-raid1-striped.json"))}
    # [lvol0_pmspare], [mirror_rimage_N], [mirror_rmeta_N], [pool_tdata], [pool_tmeta] hidden.
    assert sorted(lvs) == [
        "vggpt/data",
        "vggpt/root",
        "vggpt/swap",
        "vgsec/home",
        "vgthin/mirror",
        "vgthin/pool",
        "vgthin/stripe",
        "vgthin/thin1",
        "vgthin/thin2",
    ]
    pool, mirror, stripe = lvs["vgthin/pool"], lvs["vgthin/mirror"], lvs["vgthin/stripe"]
    assert (pool.segtype, pool.size, pool.chunk_size) == ("thin-pool", 96 * MiB, 64 * 1024)
    assert pool.metadata_size == 4 * MiB and pool.devices == ["/dev/vdd"]
    assert (mirror.segtype, mirror.mirrors, mirror.region_size) == ("raid1", 2, 2 * MiB)
    assert mirror.devices == ["/dev/vdd", "/dev/nvme0n1p2"]
    assert (stripe.segtype, stripe.stripes, stripe.stripe_size) == ("striped", 2, 64 * 1024)
    assert stripe.devices == ["/dev/vdd", "/dev/nvme0n1p2"]
    thin1 = lvs["vgthin/thin1"]
    assert (thin1.segtype, thin1.pool, thin1.size, thin1.devices) == ("thin", "pool", 200 * MiB, [])
    assert lvs["vgsec/home"].devices == ["/dev/mapper/secure"]
    assert lvs["vggpt/root"].path == "/dev/mapper/vggpt-root" and lvs["vggpt/root"].active


def test_mdadm_recorded_export_and_detail() -> None:
    # mdadm 4.2 lists the members in the export by role 1 first; there is no MD_DEVNAME
    # for an array made as /dev/md0 (the hand-written fixture guessed one).
    export = text("mdadm/guest-4.2-raid1-export.txt")
    assert "MD_DEVNAME" not in export
    array = mdadm.parse_export(export, "/dev/md0")
    assert array.members == ["/dev/vdb5", "/dev/vdc5"] and array.spares == []
    array = mdadm.parse_detail(text("mdadm/guest-4.2-raid1-detail.txt"), array)
    assert (array.level, array.metadata, array.uuid) == ("raid1", "1.2", MD_UUID)
    assert array.name == "vm:secure" and array.raid_devices == 2
    assert array.bitmap == "internal" and array.size == 306176 * 1024
    alone = mdadm.parse_detail(
        text("mdadm/guest-4.2-raid1-detail.txt"), MdArray(path="/dev/md0", level="?")
    )
    assert alone.members == array.members and alone.uuid == MD_UUID


def test_luks2_pbkdf2_recorded_text_and_json_agree() -> None:
    h = cryptsetup.parse_dump(text("cryptsetup/guest-luks2-pbkdf2.txt"))
    assert (h.version, h.uuid, h.label, h.subsystem) == (2, LUKS_UUID, "seclabel", None)
    assert (h.cipher, h.key_size, h.pbkdf, h.hash) == ("aes-xts-plain64", 512, "pbkdf2", "sha256")
    assert h.sector_size == 512 and h.data_offset == 16 * MiB
    merged = cryptsetup.merge_json_metadata(
        replace(h), text("cryptsetup/guest-luks2-pbkdf2-json.json")
    )
    assert merged == h


def test_sfdisk_mbr_logical_recorded() -> None:
    table = sfdisk.parse(text("sfdisk/guest-mbr-logical.json"))
    assert (table.label, table.id, table.sector_size) == ("dos", "0x5eed0001", 512)
    rows = [(p.node, p.start, p.size, p.type) for p in table.partitions]
    assert rows == [
        ("/dev/vdb1", 2048, 131072, "83"),
        ("/dev/vdb2", 133120, 819200, "5"),
        ("/dev/vdb5", 135168, 614400, "fd"),
        ("/dev/vdb6", 751616, 131072, "83"),
    ]


def test_btrfs_nested_subvolumes_and_default_recorded() -> None:
    subs = btrfs.parse_subvolume_list(text("btrfs/guest-subvolume-list-nested.txt"))
    # -a prints "<FS_TREE>/@" for the top level's children but "@/nested" below them.
    assert [(s.id, s.path, s.parent, s.top_level) for s in subs] == [
        (256, "@", 5, 5),
        (257, "@home", 5, 5),
        (258, "@/nested", 256, 256),
    ]
    assert all(s.uuid and len(s.uuid) == 36 for s in subs)
    assert btrfs.parse_get_default(text("btrfs/guest-get-default.txt")) == (256, "@")


def test_xfs_db_info_parses_like_xfs_info() -> None:
    params = xfs.parse(text("xfs_info/guest-xfs_db-info.txt"))
    assert params.block_size == 4096 and params.inode_size == 512 and params.agcount == 4
    assert params.features["crc"] == 1 and params.features["reflink"] == 1
    assert params.data_blocks is not None and params.data_blocks * 4096 <= 120 * MiB
