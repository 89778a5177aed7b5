"""The layout parsers on recorded (host-*) and hand-written (written-*) tool outputs.

Recorded fixtures are checked against what record-host.sh created (sizes, labels, types)
and against each other (the UUID tune2fs reads is the one blkid reads), so re-recording
them keeps these tests valid.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from rescue_runtime.layout.model import LuksDevice
from rescue_runtime.layout.parse import (
    ParseError,
    blkid,
    btrfs,
    cryptsetup,
    efibootmgr,
    ext,
    findmnt,
    lsblk,
    lvm,
    mdadm,
    multipath,
    sfdisk,
    tables,
    xfs,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "layout"
MiB = 1024 * 1024


def text(rel: str) -> str:
    return (DATA / rel).read_text()


def test_lsblk_gpt_tree_parents_and_sizes() -> None:
    devs_list = lsblk.parse(text("lsblk/host-gpt.json"))
    disk = devs_list[0]
    parts = devs_list[1:]
    assert disk.type == "loop" and disk.parents == []
    assert disk.size == 700 * MiB
    assert [p.size for p in parts] == [100 * MiB, 120 * MiB, 64 * MiB, 320 * MiB]
    assert all(p.type == "part" and p.parents == [disk.path] for p in parts)
    assert [p.path for p in parts] == [f"{disk.path}p{n}" for n in (1, 2, 3, 4)]
    assert parts[0].log_sec == 512 and parts[0].start == 2048


def test_lsblk_old_format_strings_and_nvme() -> None:
    devs = lsblk.parse(text("lsblk/written-2.33-nvme.json"))
    disk, esp, root = devs
    # util-linux 2.33 prints numbers and booleans as strings and has no PATH column.
    assert disk.size == 512110190592 and disk.rota is False and disk.path == "/dev/nvme0n1"
    assert disk.tran == "nvme" and disk.serial == "S4ENNX0N123456"
    assert esp.path == "/dev/nvme0n1p1" and esp.parents == ["/dev/nvme0n1"]
    assert esp.mountpoints == ["/boot/efi"] and root.label == "root"


def test_lsblk_merges_a_device_listed_under_two_parents() -> None:
    raw = """{"blockdevices": [
      {"name": "sda", "type": "disk", "size": 10, "children": [
        {"name": "md0", "type": "raid1", "size": 5}]},
      {"name": "sdb", "type": "disk", "size": 10, "children": [
        {"name": "md0", "type": "raid1", "size": 5}]}]}"""
    devs = lsblk.parse(raw)
    md = [d for d in devs if d.name == "md0"]
    assert len(md) == 1 and md[0].parents == ["/dev/sda", "/dev/sdb"]


def test_lsblk_rejects_garbage() -> None:
    with pytest.raises(ParseError, match="lsblk"):
        lsblk.parse("not json")
    with pytest.raises(ParseError, match="blockdevices"):
        lsblk.parse("{}")


def test_sfdisk_gpt_matches_lsblk() -> None:
    table = sfdisk.parse(text("sfdisk/host-gpt.json"))
    devs = {d.path: d for d in lsblk.parse(text("lsblk/host-gpt.json"))}
    assert table.label == "gpt" and table.sector_size == 512 and table.first_lba == 2048
    assert [p.name for p in table.partitions] == ["esp", "root", "swap", "data"]
    assert table.partitions[0].type == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    for part in table.partitions:
        assert part.size * 512 == devs[part.node].size
        assert part.start == devs[part.node].start


def test_sfdisk_mbr_extended_and_logical() -> None:
    table = sfdisk.parse(text("sfdisk/host-mbr.json"))
    assert table.label == "dos" and table.id == "0x5eed1234"
    nodes = [p.node.rsplit("p", 1)[1] for p in table.partitions]
    assert nodes == ["1", "2", "3", "5", "6"]
    assert [p.type for p in table.partitions] == ["83", "82", "5", "83", "83"]
    assert table.partitions[0].bootable and not table.partitions[1].bootable
    ext_part = table.partitions[2]
    for logical in table.partitions[3:]:
        assert ext_part.start < logical.start
        assert logical.start + logical.size <= ext_part.start + ext_part.size
        assert logical.size * 512 == 50 * MiB


def test_blkid_export_blocks() -> None:
    found = blkid.parse(text("blkid/host-gpt.txt"))
    labels = {k.rsplit("p", 1)[1]: v.get("LABEL") for k, v in found.items()}
    types = {k.rsplit("p", 1)[1]: v["TYPE"] for k, v in found.items()}
    assert labels == {"1": "ESP", "2": "root", "3": "swap0", "4": "data"}
    assert types == {"1": "vfat", "2": "ext4", "3": "swap", "4": "xfs"}
    probe = blkid.parse(text("blkid/host-gpt-probe.txt"))
    disk = next(v for v in probe.values() if "PART_ENTRY_SCHEME" not in v)
    assert disk["PTTYPE"] == "gpt"
    esp = next(v for v in probe.values() if v.get("TYPE") == "vfat")
    assert esp["VERSION"] == "FAT32" and esp["PART_ENTRY_NAME"] == "esp"


def test_tune2fs_ext4_matches_blkid() -> None:
    params, uuid, label = ext.parse(text("tune2fs/host-ext4.txt"))
    root = next(
        v for v in blkid.parse(text("blkid/host-gpt.txt")).values() if v.get("LABEL") == "root"
    )
    assert uuid == root["UUID"] and label == "root"
    # record-host.sh: mkfs.ext4 -b 4096 -I 256 -m 2 on 120 MiB
    assert params.block_size == 4096 and params.inode_size == 256
    assert params.block_count == 120 * MiB // 4096
    assert params.reserved_percent == pytest.approx(2.0, abs=0.01)
    assert "extent" in params.features and "has_journal" in params.features
    # The file system was mounted while recorded; that state flag is not a feature.
    assert "needs_recovery" not in params.features


def test_dumpe2fs_header_same_as_tune2fs() -> None:
    assert ext.parse(text("dumpe2fs/host-ext4.txt")) == ext.parse(text("tune2fs/host-ext4.txt"))


def test_tune2fs_ext3_and_garbage() -> None:
    params, _uuid, label = ext.parse(text("tune2fs/host-ext3.txt"))
    assert label == "logical1" and "extent" not in params.features
    assert "has_journal" in params.features
    with pytest.raises(ParseError, match="tune2fs"):
        ext.parse("tune2fs 1.47.0 (5-Feb-2023)\nBad magic number in super-block\n")


def test_xfs_info_6_1_recorded() -> None:
    p = xfs.parse(text("xfs_info/host-xfsprogs-6.1.txt"))
    assert p.block_size == 4096 and p.inode_size == 512 and p.sector_size == 512
    assert p.data_blocks == 320 * MiB // 4096 and p.agcount == 4
    assert p.features["crc"] == 1 and p.features["reflink"] == 1
    assert p.features["finobt"] == 1 and p.features["bigtime"] == 1
    assert p.features["ftype"] == 1 and p.naming_version == 2 and p.log_internal


@pytest.mark.parametrize(
    ("name", "crc", "reflink", "isize", "sunit"),
    [
        ("written-xfsprogs-3.2.txt", 0, None, 256, 0),
        ("written-xfsprogs-4.5.txt", 1, None, 512, 0),
        ("written-xfsprogs-5.10.txt", 1, 1, 512, 16),
    ],
)
def test_xfs_info_older_formats(
    name: str, crc: int, reflink: int | None, isize: int, sunit: int
) -> None:
    p = xfs.parse(text(f"xfs_info/{name}"))
    assert p.features["crc"] == crc
    assert p.features.get("reflink") == reflink
    assert p.inode_size == isize and p.sunit == sunit and p.block_size == 4096
    assert p.features["ftype"] in (0, 1) and p.log_blocks == 2560


def test_btrfs_outputs() -> None:
    subs = btrfs.parse_subvolume_list(text("btrfs/host-subvolume-list.txt"))
    assert [(s.path, s.top_level) for s in subs] == [("@", 5), ("@home", 5), ("@/var-lib", 256)]
    assert subs[2].parent == subs[0].id and all(s.uuid for s in subs)
    default_id, default_path = btrfs.parse_get_default(text("btrfs/host-get-default.txt"))
    assert (default_id, default_path) == (subs[0].id, "@")
    assert btrfs.parse_get_default("ID 5 (FS_TREE)\n") == (5, None)
    assert btrfs.parse_df(text("btrfs/host-filesystem-df.txt")) == {
        "data": "single",
        "system": "dup",
        "metadata": "dup",
    }
    (shown,) = btrfs.parse_show(text("btrfs/host-filesystem-show.txt"))
    assert shown.label == "pool" and len(shown.devices) == 1
    assert shown.device_sizes[shown.devices[0]] == 300 * MiB
    assert shown.uuid == blkid.parse(text("blkid/host-btrfs.txt")).popitem()[1]["UUID"]


def test_subvolume_list_all_paths_from_top_level() -> None:
    # `list -a` with a subvolume mounted: <FS_TREE>/ marks paths outside the mount.
    subs = btrfs.parse_subvolume_list(
        "ID 256 gen 7 parent 5 top level 5 uuid aca9bf48-d445-a34c-9055-90ce547ff469 "
        "path <FS_TREE>/@\n"
        "ID 257 gen 7 parent 256 top level 256 uuid - path @/nested\n"
    )
    assert [(s.path, s.uuid) for s in subs] == [
        ("@", "aca9bf48-d445-a34c-9055-90ce547ff469"),
        ("@/nested", None),
    ]


def test_subvolume_path_with_spaces() -> None:
    (sub,) = btrfs.parse_subvolume_list("ID 300 gen 9 top level 5 path my data/x y\n")
    assert sub.path == "my data/x y" and sub.top_level == 5


def test_findmnt_btrfs_subvolume_sources() -> None:
    mounts = {m.target: m for m in findmnt.parse(text("findmnt/host.json"))}
    home = mounts["/tmp/work/mnt/home"]
    assert home.fstype == "btrfs" and home.fsroot == "/@home" and "[" not in home.source
    assert "noatime" in home.options and "subvol=/@home" in home.options
    assert mounts["/tmp/work/mnt/data"].fstype == "xfs"


def test_fstab_crypttab_mdadm_conf_swaps() -> None:
    fstab = tables.parse_fstab(
        "# comment\nUUID=abc / ext4 errors=remount-ro 0 1\n"
        "/dev/vg0/home /home\\040dir xfs defaults,noatime 0 2\n"
        "UUID=def none swap sw 0 0\nproc /proc proc\n"
    )
    assert [e.file for e in fstab] == ["/", "/home dir", "none", "/proc"]
    assert fstab[0].passno == 1 and fstab[1].options == ["defaults", "noatime"]
    assert fstab[3].options == ["defaults"]
    crypt = tables.parse_crypttab(
        "cryptpv UUID=1234 none luks,discard\ncryptdata /dev/sdb1 /etc/keys/data.key luks\n"
    )
    assert crypt[0].key_file is None and crypt[0].options == ["luks", "discard"]
    assert crypt[1].key_file == "/etc/keys/data.key"
    conf = tables.parse_mdadm_conf(
        "DEVICE partitions\nARRAY /dev/md/0 metadata=1.2 UUID=3b5c2d8e:9f1a4b6c:7d2e8f0a:1b3c5d7e\n"
        "   name=rescue-test:0\n# ARRAY /dev/md9 UUID=x\n"
    )
    assert len(conf) == 1 and conf[0].device == "/dev/md/0"
    assert conf[0].values["name"] == "rescue-test:0" and conf[0].values["metadata"] == "1.2"
    swaps = tables.parse_proc_swaps(
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/dm-1  partition\t1048572\t0\t-2\n"
    )
    assert swaps == ["/dev/dm-1"]


def test_lvm_recorded_pvs_vgs() -> None:
    pvs = lvm.parse_pvs(text("lvm/host-pvs.json"))
    (vg,) = lvm.parse_vgs(text("lvm/host-vgs.json"))
    assert len(pvs) == 2 and {p.vg for p in pvs} == {"vgdata"}
    assert all(p.size == 192 * MiB and p.pe_start == MiB and len(p.uuid) == 38 for p in pvs)
    assert vg.name == "vgdata" and vg.extent_size == 8 * MiB and vg.tags == ["site-a"]


def test_lvm_lvs_thin_striped_raid1_segments() -> None:
    lvs = {lv.name: lv for lv in lvm.parse_lvs(text("lvm/written-lvs-thin-raid.json"))}
    assert set(lvs) == {"root", "swap-1", "mirrored", "pool", "thin1", "thin2"}
    assert lvs["root"].devices == ["/dev/md0", "/dev/mapper/cryptpv"]  # two segments merged
    assert lvs["swap-1"].segtype == "striped" and lvs["swap-1"].stripes == 2
    assert lvs["swap-1"].stripe_size == 65536 and lvs["swap-1"].tags == ["swap", "prod"]
    assert lvs["swap-1"].path == "/dev/mapper/vg0-swap--1"
    assert lvs["mirrored"].segtype == "raid1" and lvs["mirrored"].mirrors == 2
    assert lvs["pool"].segtype == "thin-pool" and lvs["pool"].chunk_size == 65536
    assert lvs["pool"].metadata_size == 8 * MiB
    assert lvs["thin1"].pool == "pool" and lvs["thin1"].size == 5 * 1024 * MiB
    assert lvs["thin1"].devices == []
    # Through the hidden sub-LVs: the RAID images' PVs, the pool's data and metadata PVs.
    assert lvs["mirrored"].devices == ["/dev/md0", "/dev/mapper/cryptpv"]
    assert lvs["pool"].devices == ["/dev/md0", "/dev/mapper/cryptpv"]


def test_mdadm_export_and_detail() -> None:
    array = mdadm.parse_export(text("mdadm/written-4.2-raid1-export.txt"), "/dev/md0")
    array = mdadm.parse_detail(text("mdadm/written-4.2-raid1-detail.txt"), array)
    assert array.level == "raid1" and array.metadata == "1.2" and array.raid_devices == 2
    assert array.members == ["/dev/vda2", "/dev/vdb2"] and array.spares == ["/dev/vdc2"]
    assert array.uuid == "3b5c2d8e:9f1a4b6c:7d2e8f0a:1b3c5d7e" and array.name == "rescue-test:0"
    assert array.bitmap == "internal" and array.size == 10481664 * 1024


def test_mdadm_detail_alone_raid5() -> None:
    from rescue_runtime.layout.model import MdArray

    array = mdadm.parse_detail(
        text("mdadm/written-4.2-raid5-detail.txt"), MdArray(path="/dev/md1", level="?")
    )
    assert array.level == "raid5" and array.chunk_size == 512 * 1024
    assert array.layout == "left-symmetric" and array.bitmap == "none"
    assert array.members == ["/dev/vda3", "/dev/vdb3", "/dev/vdc3"]
    assert array.name == "rescue-test:1"
    with pytest.raises(ParseError, match="mdadm"):
        mdadm.parse_export("", "/dev/md9")


def test_luks1_recorded() -> None:
    h = cryptsetup.parse_dump(text("cryptsetup/host-luks1.txt"))
    assert h.version == 1 and h.cipher == "aes-xts-plain64" and h.key_size == 512
    assert h.hash == "sha256" and h.pbkdf == "pbkdf2" and h.data_offset == 4096 * 512
    assert h.uuid and len(h.uuid) == 36 and h.label is None


def test_luks2_recorded_text_and_json_agree() -> None:
    h = cryptsetup.parse_dump(text("cryptsetup/host-luks2.txt"))
    assert h.version == 2 and h.label == "cryptroot" and h.subsystem is None
    assert h.cipher == "aes-xts-plain64" and h.key_size == 512 and h.sector_size == 4096
    assert h.pbkdf == "argon2id" and h.hash == "sha256" and h.data_offset == 16 * MiB
    from dataclasses import replace

    merged = cryptsetup.merge_json_metadata(replace(h), text("cryptsetup/host-luks2-json.json"))
    assert merged == h
    with pytest.raises(ParseError, match="luksDump"):
        cryptsetup.parse_dump("Device /dev/sdb1 is not a valid LUKS device.\n")


def test_luks_header_fields_are_luks_device_fields() -> None:
    """Capture hands the whole header to LuksDevice by field name: each must exist there with
    the same type."""
    device = {f.name: f.type for f in fields(LuksDevice)}
    header = {f.name: f.type for f in fields(cryptsetup.LuksHeader)}
    assert {name: device.get(name) for name in header} == header


def test_efibootmgr_versions() -> None:
    boot = efibootmgr.parse(text("efibootmgr/written-18.txt"))
    assert boot.current == "0001" and boot.order == ["0001", "0000", "0002"]
    debian = next(e for e in boot.entries if e.label == "debian")
    assert debian.loader == "\\EFI\\debian\\shimx64.efi" and debian.active
    assert debian.partition_uuid == "844154f7-b405-db40-91c3-c6b19d78f811"
    pxe = next(e for e in boot.entries if e.number == "0002")
    assert not pxe.active and pxe.label == "UEFI PXEv4 (MAC:525400123456)"
    old = efibootmgr.parse(text("efibootmgr/written-15.txt"))
    assert [e.label for e in old.entries] == ["EFI Internal Shell", "sles-secureboot"]
    assert old.entries[1].loader == "\\EFI\\sles\\shim.efi"


def test_multipath_ll() -> None:
    maps = multipath.parse(text("multipath/written-0.9.4.txt"))
    assert [m.name for m in maps] == ["mpatha", "360014051a2b3c4d5e6f708192a3b4c5d"]
    assert maps[0].wwid == "360014059b7e3c9d1f3a4b5c6d7e8f901"
    assert maps[0].paths == ["/dev/sda", "/dev/sdb"] and maps[0].size == 10 * 1024**3
    assert maps[1].paths == ["/dev/sdc", "/dev/sdd"] and maps[1].vendor == "LIO-ORG"
