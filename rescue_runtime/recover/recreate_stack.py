"""Recreate layers 2-4: MD arrays, LUKS containers and LVM, with their original identities.

LVM identities: `pvcreate --uuid` keeps each PV's UUID; vgcreate and lvcreate cannot be
told a UUID, so once a VG's LVs exist the `lvm-ids:VG` block deactivates it, takes its
metadata (vgcfgbackup), replaces the new VG and LV UUIDs with the saved ones and writes
it back with vgcfgrestore. That keeps every UUID without writing LVM's metadata format
ourselves, and the LVs are still made by lvcreate (allocation, thin pool metadata).
"""

from __future__ import annotations

from rescue_runtime.layout.model import (
    Layout,
    LogicalVolume,
    LuksDevice,
    MdArray,
    PhysicalVolume,
    VolumeGroup,
)
from rescue_runtime.recover.recreate_block import Block, size_arg


def md_block(md: MdArray) -> Block:
    block = Block(md.id, f"MD {md.level} {md.path} on {', '.join(md.slots() + md.spares)}")
    for member in md.members + md.spares:
        block.run("wipefs", "--all", "--force", member)
    argv = ["mdadm", "--create", md.path, "--run", "--assume-clean", f"--level={md.level}"]
    if md.metadata:
        argv.append(f"--metadata={md.metadata}")
    if md.uuid:
        argv.append(f"--uuid={md.uuid}")
    if md.name:
        argv.append(f"--name={md.name}")  # host:name keeps the home host too
    if md.chunk_size and md.level not in ("raid1", "linear"):
        argv.append(f"--chunk={md.chunk_size // 1024}K")
    if md.layout and md.level in ("raid5", "raid6", "raid10"):
        argv.append(f"--layout={md.layout}")
    if md.bitmap and md.level != "raid0":
        argv.append(f"--bitmap={md.bitmap}")
    argv.append(f"--raid-devices={md.raid_devices or len(md.members) + len(md.missing)}")
    if md.spares:
        argv.append(f"--spare-devices={len(md.spares)}")
    # Member order is slot order: the saved list (`missing` where a disk is gone: a degraded
    # array), then the spares.
    block.run(*argv, *md.slots(), *md.spares)
    block.run("wait_dev", md.path)
    return block


def luks_block(luks: LuksDevice) -> Block:
    block = Block(luks.id, f"LUKS{luks.version} {luks.name} on {luks.device}")
    key = f'"$KEY_DIR/{luks.name}.key"'
    block.run("wipefs", "--all", "--force", luks.device)
    if luks.header_backup:
        block.comments.append(
            "from the saved header: every original passphrase and key file opens it"
        )
        block.run("key_given", luks.name)
        header = f'"$LAYOUT_DIR/{luks.header_backup}"'
        block.run(
            "cryptsetup",
            "luksHeaderRestore",
            "--batch-mode",
            "--header-backup-file",
            header,
            luks.device,
        )
    else:
        block.comments.append(f"a new key in $KEY_DIR/{luks.name}.key (no header backup saved)")
        block.run("key_file", luks.name)
        block.run("cryptsetup", *luks_format_args(luks), "--key-file", key, luks.device)
    block.run("cryptsetup", "open", "--key-file", key, luks.device, luks.name)
    block.run("wait_dev", f"/dev/mapper/{luks.name}")
    return block


def luks_format_args(luks: LuksDevice) -> list[str]:
    argv = ["luksFormat", "--batch-mode", "--type", f"luks{luks.version}"]
    if luks.uuid:
        argv += ["--uuid", luks.uuid]
    if luks.label and luks.version == 2:
        argv += ["--label", luks.label]
    if luks.subsystem and luks.version == 2:
        argv += ["--subsystem", luks.subsystem]
    if luks.cipher:
        argv += ["--cipher", luks.cipher]
    if luks.key_size:
        argv += ["--key-size", str(luks.key_size)]
    if luks.hash:
        argv += ["--hash", luks.hash]
    argv += pbkdf_args(luks)
    if luks.sector_size and luks.version == 2:
        argv += ["--sector-size", str(luks.sector_size)]
    if luks.data_offset:
        argv += ["--offset", str(luks.data_offset // 512)]  # in 512-byte sectors
    return argv


def pbkdf_args(luks: LuksDevice) -> list[str]:
    """The first key slot's PBKDF and its cost: luksFormat and finalize's luksAddKey give
    every new key slot the cost the original had."""
    argv = []
    if luks.pbkdf and luks.version == 2:
        argv += ["--pbkdf", luks.pbkdf]
    if luks.pbkdf_iterations:
        argv += ["--pbkdf-force-iterations", str(luks.pbkdf_iterations)]
    if luks.pbkdf_memory and (luks.pbkdf or "").startswith("argon2"):
        argv += ["--pbkdf-memory", str(luks.pbkdf_memory)]
    if luks.pbkdf_parallel and (luks.pbkdf or "").startswith("argon2"):
        argv += ["--pbkdf-parallel", str(luks.pbkdf_parallel)]
    return argv


def pv_block(pv: PhysicalVolume) -> Block:
    block = Block(pv.id, f"LVM PV {pv.device} (VG {pv.vg})")
    block.run("wipefs", "--all", "--force", pv.device)
    argv = ["lvm", "pvcreate", "--yes", "--uuid", pv.uuid, "--norestorefile"]
    if pv.metadata_copies is not None:
        argv += ["--pvmetadatacopies", str(pv.metadata_copies)]
    block.run(*argv, pv.device)
    return block


def vg_block(vg: VolumeGroup) -> Block:
    block = Block(vg.id, f"LVM VG {vg.name} on {', '.join(vg.pvs)}")
    argv = ["lvm", "vgcreate", "--yes", "--physicalextentsize", size_arg(vg.extent_size)]
    for tag in vg.tags:
        argv += ["--addtag", tag]
    block.run(*argv, vg.name, *vg.pvs)
    return block


def lv_block(lv: LogicalVolume, layout: Layout) -> Block:
    block = Block(lv.id, f"LVM LV {lv.full_name}: {lv.segtype}, {lv.size} bytes")
    argv = ["lvm", "lvcreate", "--yes", "--name", lv.name]
    devices = [d for d in lv.devices if d in {pv.device for pv in layout.pvs}]
    if lv.segtype == "thin":
        argv += ["--type", "thin", "--virtualsize", size_arg(lv.size), "--thinpool", lv.pool or ""]
        devices = []
    elif lv.segtype == "thin-pool":
        argv += ["--type", "thin-pool", "--size", size_arg(lv.size)]
        if lv.chunk_size:
            argv += ["--chunksize", size_arg(lv.chunk_size)]
        if lv.metadata_size:
            argv += ["--poolmetadatasize", size_arg(lv.metadata_size)]
    elif lv.origin:
        argv += ["--snapshot", "--size", size_arg(lv.size)]
        block.run(*argv, f"{lv.vg}/{lv.origin}")
        return block
    else:
        argv += ["--wipesignatures", "y", "--size", size_arg(lv.size)]
        if lv.segtype in ("striped", "raid0", "raid4", "raid5", "raid6", "raid10") and lv.stripes:
            argv += ["--stripes", str(lv.stripes)]
            if lv.stripe_size:
                argv += ["--stripesize", size_arg(lv.stripe_size)]
        if lv.segtype not in ("linear", "striped"):
            argv += ["--type", lv.segtype]
        if lv.segtype in ("raid1", "mirror", "raid10") and lv.mirrors:
            argv += ["--mirrors", str(lv.mirrors - 1)]
        if lv.region_size and lv.segtype in ("raid1", "mirror", "raid10"):
            argv += ["--regionsize", size_arg(lv.region_size)]
    for tag in lv.tags:
        argv += ["--addtag", tag]
    block.run(*argv, lv.vg, *devices)
    return block


def lvm_ids_block(vg: VolumeGroup, layout: Layout) -> Block:
    block = Block(f"lvm-ids:{vg.name}", f"LVM {vg.name}: the saved VG and LV UUIDs")
    lvs = [lv for lv in layout.lvs if lv.vg == vg.name]
    meta = f'"$WORK_DIR/{vg.name}.vg"'
    block.run("lvm", "vgchange", "--activate", "n", vg.name)
    block.run("lvm", "vgcfgbackup", "--file", meta, vg.name)
    # UUIDs are unique strings: replacing the new one by the saved one touches nothing else.
    targets = [("vg", vg.name, vg.uuid)] + [("lv", lv.full_name, lv.uuid) for lv in lvs]
    for kind, name, uuid in targets:
        block.raw(
            f'sed -i "s/\\"$(lvm_uuid {kind} {name})\\"/\\"{uuid}\\"/" {meta}', "sed", "tr", "lvm"
        )
    # --force: LVM asks for it when the VG holds thin pools (their kernel metadata stays).
    block.run("lvm", "vgcfgrestore", "--force", "--file", meta, vg.name)
    block.run("lvm", "vgchange", "--activate", "y", vg.name)
    for lv in lvs:
        if not lv.active:
            block.run("lvm", "lvchange", "--activate", "n", lv.full_name)
    for lv in lvs:
        if lv.active and lv.segtype != "thin-pool":
            block.run("wait_dev", lv.path)
    return block
