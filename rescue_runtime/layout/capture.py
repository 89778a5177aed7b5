"""Capture the machine's storage stack into a Layout.

lsblk gives the tree of block devices; each layer is then asked its own tool for the
parameters recreation needs (sfdisk for exact partition positions, mdadm, cryptsetup, LVM,
the file systems' tools). Runs the same on the host and inside the rescue system.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from rescue_runtime.errors import CommandError, MissingError, UsageError
from rescue_runtime.layout import boot as boot_mod
from rescue_runtime.layout.model import (
    GPT_TYPE_FLAGS,
    MBR_TYPE_FLAGS,
    BtrfsParams,
    CaptureOptions,
    Disk,
    Filesystem,
    Layout,
    LuksDevice,
    MdArray,
    Mount,
    Partition,
)
from rescue_runtime.layout.parse import (
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
from rescue_runtime.layout.parse.lsblk import BlockDevice
from rescue_runtime.layout.probe import Probe, SystemProbe
from rescue_runtime.layout.select import select

DISK_TYPES = ("disk", "loop")
EXT_TYPES = ("ext2", "ext3", "ext4")
# Types lsblk reports that are not file systems to recreate but layers of the stack.
CONTAINER_TYPES = ("LVM2_member", "crypto_LUKS", "linux_raid_member", "mpath_member")
# Signatures of layers capture describes only when they are open or running.
UNOPENED = {
    "crypto_LUKS": "a LUKS container that is not open",
    "linux_raid_member": "an MD RAID member of no running array",
}
# /dev/disk/by-id links named after a device's content, not its hardware.
CONTENT_LINKS = ("lvm-pv-uuid-", "md-uuid-", "md-name-", "dm-uuid-", "dm-name-")


@dataclass
class Devices:
    """lsblk's devices with every name they can be reached by."""

    all: list[BlockDevice]
    by_name: dict[str, BlockDevice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for dev in self.all:
            for name in (dev.path, f"/dev/{dev.kname}", f"/dev/{dev.name}"):
                self.by_name.setdefault(name, dev)
            if dev.type in ("lvm", "crypt", "mpath"):
                self.by_name.setdefault(f"/dev/mapper/{dev.name}", dev)
            if dev.maj_min:
                self.by_name.setdefault(f"majmin:{dev.maj_min}", dev)

    def resolve(self, name: str) -> BlockDevice | None:
        """A device by path, symlink (/dev/vg/lv, /dev/disk/by-uuid/...) or maj:min."""
        found = self.by_name.get(name)
        if found is None and name.startswith("/dev/"):
            found = self.by_name.get(os.path.realpath(name))
        return found


def partition_number(path: str) -> int:
    m = re.search(r"(\d+)$", path)
    return int(m.group(1)) if m else 0


def partition_flags(ptype: str, table: str, bootable: bool, attrs: str | None) -> list[str]:
    flags = []
    role = GPT_TYPE_FLAGS.get(ptype) if table == "gpt" else MBR_TYPE_FLAGS.get(ptype)
    if role:
        flags.append(role)
    if bootable:
        flags.append("boot")
    if attrs and "LegacyBIOSBootable" in attrs:
        flags.append("legacy_boot")
    return flags


class Capture:
    def __init__(self, probe: Probe, root: str, luks_header_dir: str | None) -> None:
        self.probe = probe
        self.root = root.rstrip("/") or "/"
        self.luks_header_dir = luks_header_dir
        self.layout = Layout()

    def probe_signatures(self, devs: Devices) -> None:
        """lsblk takes file system and partition table details from udev's database, which
        is empty where udev does not run (this build machine, an early rescue shell):
        blkid's low-level probe fills them in and wins where both know a value."""
        paths = [d.path for d in devs.all if d.type not in ("rom",) and d.size > 0]
        if not paths:
            return
        # blkid exits 2 when none of the devices carries a signature.
        out = self.probe.tool(
            ["blkid", "-c", "/dev/null", "-p", "-o", "export", *paths],
            what="probing signatures",
            ok_codes=(0, 2),
        )
        if out is None:
            self.note("blkid is not installed: signatures taken from lsblk (udev) only.")
            return
        for path, info in blkid.parse(out).items():
            dev = devs.resolve(path)
            if dev is None:
                continue
            dev.fstype = info.get("TYPE", dev.fstype)
            dev.uuid = info.get("UUID", dev.uuid)
            dev.label = info.get("LABEL", dev.label)
            dev.fsver = info.get("VERSION", dev.fsver)
            dev.pttype = info.get("PTTYPE", dev.pttype)
            dev.ptuuid = info.get("PTUUID", dev.ptuuid)
            dev.partuuid = info.get("PART_ENTRY_UUID", info.get("PARTUUID", dev.partuuid))
            dev.partlabel = info.get("PART_ENTRY_NAME", info.get("PARTLABEL", dev.partlabel))

    def note(self, text: str) -> None:
        self.layout.notes.append(text)

    def tool(self, argv: list[str], *, what: str, part: str) -> str | None:
        out = self.probe.tool(argv, what=what)
        if out is None:
            self.note(f"{argv[0]} is not installed: {part} not captured.")
        return out

    def etc(self, name: str) -> str:
        return self.probe.read(os.path.join(self.root, "etc", name)) or ""

    # -- the layers, bottom up ---------------------------------------------------------
    def disks(self, devs: Devices) -> None:
        links: dict[str, list[str]] = {}
        for kind in ("by-id", "by-path"):
            for link, target in self.probe.links(f"/dev/disk/{kind}").items():
                # udev also names devices by what they hold (a whole-disk LVM PV): not an
                # identity of the disk, and gone once the disk is replaced.
                if os.path.basename(link).startswith(CONTENT_LINKS):
                    continue
                links.setdefault(f"{kind}:{target}", []).append(link)
        for dev in devs.all:
            if dev.type not in DISK_TYPES or dev.parents:
                continue
            disk = Disk(
                path=dev.path,
                size=dev.size,
                logical_sector_size=dev.log_sec or 512,
                physical_sector_size=dev.phy_sec or 512,
                table=dev.pttype,
                table_id=dev.ptuuid,
                model=dev.model,
                serial=dev.serial,
                wwn=dev.wwn,
                vendor=dev.vendor,
                transport=dev.tran,
                rotational=dev.rota,
                by_id=links.get(f"by-id:{dev.path}", []),
                by_path=links.get(f"by-path:{dev.path}", []),
            )
            has_parts = any(d.type == "part" and dev.path in d.parents for d in devs.all)
            if (dev.pttype and dev.pttype != "unknown") or has_parts:
                self.partitions(disk, devs)
            self.layout.disks.append(disk)

    def unreadable(self, device: str) -> bool:
        """A device the kernel lists but this process may not open: noted, not fatal (its
        details stay empty and recovery will say so); any other tool failure is an error."""
        problem = self.probe.cannot_open(device)
        if problem is not None:
            self.note(f"cannot open {device} ({problem}): its details are not captured.")
        return problem is not None

    def partitions(self, disk: Disk, devs: Devices) -> None:
        out = None
        if not self.unreadable(disk.path):
            # Exit 1 with no output: no table sfdisk knows, though udev's (possibly stale)
            # database named one — a loop device re-attached to another image, say.
            out = self.probe.tool(
                ["sfdisk", "-J", disk.path], what=f"reading {disk.path}'s table", ok_codes=(0, 1)
            )
            if out is None:
                self.note(
                    f"sfdisk is not installed: the partition table of {disk.path} not captured."
                )
            elif not out.strip():
                self.note(
                    f"sfdisk finds no partition table on {disk.path} although the kernel lists "
                    f"{disk.table or 'partitions'}: the kernel's view of its partitions is used."
                )
                out = None
        if out is None:
            self.partitions_from_lsblk(disk, devs)
            return
        table = sfdisk.parse(out)
        disk.table, disk.table_id = table.label, table.id
        disk.first_lba, disk.last_lba = table.first_lba, table.last_lba
        for raw in table.partitions:
            dev = devs.resolve(raw.node)
            number = partition_number(raw.node)
            if table.label == "dos":
                extended = raw.type in ("5", "f", "85")
                kind = "extended" if extended else ("logical" if number > 4 else "primary")
            else:
                kind = "primary"
            disk.partitions.append(
                Partition(
                    path=dev.path if dev else raw.node,
                    number=number,
                    start=raw.start * table.sector_size,
                    size=raw.size * table.sector_size,
                    type=raw.type,
                    type_name=dev.parttypename if dev else None,
                    name=raw.name,
                    uuid=raw.uuid.lower() if raw.uuid else (dev.partuuid if dev else None),
                    flags=partition_flags(raw.type, table.label, raw.bootable, raw.attrs),
                    attrs=raw.attrs,
                    kind=kind,
                    disk=disk.path,
                )
            )

    def partitions_from_lsblk(self, disk: Disk, devs: Devices) -> None:
        """The kernel's view of the partitions when the table itself cannot be read: enough
        for the dependency graph; positions are exact only where lsblk has START."""
        for dev in devs.all:
            if dev.type != "part" or disk.path not in dev.parents:
                continue
            number = partition_number(dev.path)
            raw_type = (dev.parttype or "").lower().removeprefix("0x")
            ptype = raw_type.upper() if "-" in raw_type else raw_type
            table = disk.table or ("gpt" if "-" in raw_type else "dos")
            if table == "dos" and ptype in ("5", "f", "85"):
                kind = "extended"
            else:
                kind = "logical" if table == "dos" and number > 4 else "primary"
            disk.partitions.append(
                Partition(
                    path=dev.path,
                    number=number,
                    start=(dev.start or 0) * 512,
                    size=dev.size,
                    type=ptype,
                    type_name=dev.parttypename,
                    name=dev.partlabel,
                    uuid=dev.partuuid,
                    flags=partition_flags(ptype, table, False, None),
                    kind=kind,
                    disk=disk.path,
                )
            )
        if disk.partitions:
            self.note(f"partitions of {disk.path} taken from the kernel's view (lsblk).")

    def multipaths(self, devs: Devices) -> None:
        if not any(d.type == "mpath" for d in devs.all):
            return
        out = self.tool(["multipath", "-ll"], what="listing multipath maps", part="multipath maps")
        if out is not None:
            self.layout.multipaths = multipath.parse(out)

    def mds(self, devs: Devices) -> None:
        arrays = [d for d in devs.all if d.type.startswith("raid") or d.type == "linear"]
        if not arrays:
            return
        if self.probe.tool(["mdadm", "--version"], what="checking mdadm") is None:
            self.note("mdadm is not installed: MD RAID arrays not captured.")
            return
        for dev in arrays:
            export = (
                self.probe.tool(
                    ["mdadm", "--detail", "--export", dev.path], what=f"reading MD array {dev.path}"
                )
                or ""
            )
            detail = (
                self.probe.tool(
                    ["mdadm", "--detail", dev.path], what=f"reading MD array {dev.path}"
                )
                or ""
            )
            array = (
                mdadm.parse_export(export, dev.path)
                if "MD_LEVEL" in export
                else MdArray(path=dev.path, level=dev.type)
            )
            array = mdadm.parse_detail(detail, array)
            # mdadm names members by kernel name; map them to lsblk's paths.
            array.members = [self._path(devs, m) for m in array.members]
            array.spares = [self._path(devs, m) for m in array.spares]
            if not array.members:
                array.members = list(dev.parents)
            self.layout.mds.append(array)
        conf = tables.parse_mdadm_conf(self.etc("mdadm/mdadm.conf") or self.etc("mdadm.conf"))
        if not conf:
            self.note("no ARRAY lines in mdadm.conf: arrays are named from mdadm --detail.")

    @staticmethod
    def _path(devs: Devices, name: str) -> str:
        dev = devs.resolve(name)
        return dev.path if dev else name

    def luks(self, devs: Devices) -> None:
        mappings = [d for d in devs.all if d.type == "crypt"]
        if not mappings:
            return
        crypttab = {e.name: e for e in tables.parse_crypttab(self.etc("crypttab"))}
        for dev in mappings:
            if not dev.parents:
                continue
            backing = dev.parents[0]
            dump = self.tool(
                ["cryptsetup", "luksDump", backing],
                what=f"reading the LUKS header of {backing}",
                part=f"the LUKS header of {backing}",
            )
            if dump is None:
                continue
            header = cryptsetup.parse_dump(dump)
            if header.version == 2:
                # --dump-json-metadata exists from cryptsetup 2.4 on; older ones refuse it.
                try:
                    meta = self.probe.tool(
                        ["cryptsetup", "luksDump", "--dump-json-metadata", backing],
                        what=f"reading the LUKS2 metadata of {backing}",
                    )
                except CommandError:  # older cryptsetup: the text dump suffices
                    meta = None
                if meta:
                    header = cryptsetup.merge_json_metadata(header, meta)
            entry = crypttab.get(dev.name)
            luks = LuksDevice(
                path=dev.path,
                name=dev.name,
                device=backing,
                version=header.version,
                uuid=header.uuid,
                label=header.label,
                subsystem=header.subsystem,
                cipher=header.cipher,
                key_size=header.key_size,
                hash=header.hash,
                pbkdf=header.pbkdf,
                pbkdf_iterations=header.pbkdf_iterations,
                pbkdf_memory=header.pbkdf_memory,
                pbkdf_parallel=header.pbkdf_parallel,
                sector_size=header.sector_size,
                data_offset=header.data_offset,
                key_file=entry.key_file if entry else None,
                options=entry.options if entry else [],
            )
            if self.luks_header_dir:
                luks.header_backup = self.backup_header(backing, dev.name)
            self.layout.luks.append(luks)

    def backup_header(self, device: str, name: str) -> str:
        os.makedirs(self.luks_header_dir or ".", mode=0o700, exist_ok=True)
        file_name = f"luks-header-{name}.img"
        target = os.path.join(self.luks_header_dir or ".", file_name)
        tmp = target + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        self.probe.tool(
            ["cryptsetup", "luksHeaderBackup", device, "--header-backup-file", tmp],
            what=f"backing up the LUKS header of {device}",
        )
        os.replace(tmp, target)
        return file_name

    def lvm(self, devs: Devices) -> None:
        if not any(d.type == "lvm" or d.fstype == "LVM2_member" for d in devs.all):
            return
        common = ["--reportformat", "json", "--units", "b", "--nosuffix"]
        pvs = self.tool(
            ["lvm", "pvs", *common, "-o", lvm.PVS_FIELDS], what="listing LVM PVs", part="LVM"
        )
        if pvs is None:
            return
        vgs = (
            self.probe.tool(["lvm", "vgs", *common, "-o", lvm.VGS_FIELDS], what="listing LVM VGs")
            or ""
        )
        lvs = (
            self.probe.tool(
                ["lvm", "lvs", "-a", *common, "-o", lvm.LVS_FIELDS], what="listing LVM LVs"
            )
            or ""
        )
        self.layout.pvs = lvm.parse_pvs(pvs)
        for pv in self.layout.pvs:
            pv.device = self._path(devs, pv.device)
        self.layout.vgs = lvm.parse_vgs(vgs)
        for vg in self.layout.vgs:
            vg.pvs = [pv.device for pv in self.layout.pvs if pv.vg == vg.name]
        self.layout.lvs = lvm.parse_lvs(lvs)
        for lv in self.layout.lvs:
            dev = devs.resolve(lv.path)
            if dev:
                lv.path = dev.path
            lv.devices = [self._path(devs, d) for d in lv.devices]

    def filesystems(self, devs: Devices, live: list[findmnt.LiveMount]) -> None:
        # Where neither udev nor blkid could tell (an unreadable device), the live mount's
        # own view of the file system stands in.
        for m in live:
            dev = devs.resolve(m.source)
            if dev is not None and not dev.fstype and m.fstype:
                dev.fstype, dev.uuid, dev.label = m.fstype, m.uuid, m.label
        candidates = [d for d in devs.all if d.fstype and d.fstype not in CONTAINER_TYPES]
        seen_btrfs: dict[str, Filesystem] = {}
        for dev in candidates:
            fstype = dev.fstype or ""
            fs = Filesystem(
                device=dev.path, fstype=fstype, uuid=dev.uuid, label=dev.label, size=dev.size
            )
            mountpoint = next((m.target for m in live if devs.resolve(m.source) is dev), None)
            if fstype in EXT_TYPES:
                self.ext(fs)
            elif fstype == "xfs":
                self.xfs(fs, mountpoint)
            elif fstype == "btrfs":
                if fs.uuid in seen_btrfs:  # a further device of a multi-device btrfs
                    continue
                if fs.uuid:
                    seen_btrfs[fs.uuid] = fs
                self.btrfs(fs, mountpoint, live, devs)
            elif fstype == "vfat" and dev.fsver:
                digits = re.sub(r"\D", "", dev.fsver)
                fs.fat_size = int(digits) if digits else None
            self.layout.filesystems.append(fs)

    def ext(self, fs: Filesystem) -> None:
        if self.unreadable(fs.device):
            return
        out = self.probe.tool(["tune2fs", "-l", fs.device], what=f"reading {fs.device}")
        if out is None:
            out = self.tool(
                ["dumpe2fs", "-h", fs.device],
                what=f"reading {fs.device}",
                part=f"the ext parameters of {fs.device}",
            )
        if out:
            fs.ext, uuid, label = ext.parse(out)
            fs.uuid, fs.label = uuid or fs.uuid, label if label is not None else fs.label

    def xfs(self, fs: Filesystem, mountpoint: str | None) -> None:
        # xfs_info before xfsprogs 5.x takes only a mount point.
        if mountpoint is None and self.unreadable(fs.device):
            return
        # xfsprogs 4.x and later make xfs_info a script around xfs_spaceman (mounted) or
        # xfs_db: where the helper is missing (a trimmed rescue system) the script exits 127
        # with nothing on stdout, and xfs_db's own `info` prints the same report.
        out = self.probe.tool(
            ["xfs_info", mountpoint or fs.device], what=f"reading {fs.device}", ok_codes=(0, 127)
        )
        if not out and not self.unreadable(fs.device):
            out = self.tool(
                ["xfs_db", "-r", "-c", "info", fs.device],
                what=f"reading {fs.device}",
                part=f"the XFS parameters of {fs.device}",
            )
        if out:
            fs.xfs = xfs.parse(out)

    def btrfs(
        self, fs: Filesystem, mountpoint: str | None, live: list[findmnt.LiveMount], devs: Devices
    ) -> None:
        # Every device carrying this btrfs's UUID; `btrfs filesystem show` confirms when mounted.
        members = [d.path for d in devs.all if d.fstype == "btrfs" and d.uuid == fs.uuid]
        fs.btrfs = BtrfsParams(devices=members if fs.uuid and members else [fs.device])
        if mountpoint is None:
            self.note(f"btrfs on {fs.device} is not mounted: subvolumes not captured.")
            return
        show = self.tool(
            ["btrfs", "filesystem", "show", "--raw", mountpoint],
            what=f"reading btrfs on {fs.device}",
            part=f"btrfs on {fs.device}",
        )
        if show is None:
            return
        shown = btrfs.parse_show(show)
        if shown and shown[0].devices:
            fs.btrfs.devices = shown[0].devices
        profiles = btrfs.parse_df(
            self.probe.tool(
                ["btrfs", "filesystem", "df", "-b", mountpoint], what="reading btrfs profiles"
            )
            or ""
        )
        fs.btrfs.data_profile = profiles.get("data") or profiles.get("data+metadata")
        fs.btrfs.metadata_profile = profiles.get("metadata") or profiles.get("data+metadata")
        fs.btrfs.system_profile = profiles.get("system")
        fs.btrfs.subvolumes = btrfs.parse_subvolume_list(
            self.probe.tool(
                # -a: paths from the top level, whichever subvolume is mounted here.
                ["btrfs", "subvolume", "list", "-a", "-p", "-u", mountpoint],
                what="listing btrfs subvolumes",
            )
            or ""
        )
        default = self.probe.tool(
            ["btrfs", "subvolume", "get-default", mountpoint],
            what="reading the default btrfs subvolume",
        )
        if default:
            fs.btrfs.default_subvolume, fs.btrfs.default_subvolume_path = btrfs.parse_get_default(
                default
            )
        for sub in fs.btrfs.subvolumes:
            for m in live:
                if m.uuid == fs.uuid and m.fsroot.strip("/") == sub.path:
                    sub.mount_options = [
                        o for o in m.options if not o.startswith(("subvol=", "subvolid="))
                    ]

    def mounts(self, devs: Devices, live: list[findmnt.LiveMount]) -> None:
        fstab = tables.parse_fstab(self.etc("fstab"))
        by_target = {e.file: e for e in fstab}
        root = self.root

        def inside(target: str) -> str | None:
            if root == "/":
                return target
            if target == root:
                return "/"
            if target.startswith(root + "/"):
                return target[len(root) :]
            return None

        seen: set[str] = set()
        for m in live:
            target = inside(m.target)
            dev = devs.resolve(m.source)
            if target is None or dev is None or target in seen:
                continue
            seen.add(target)
            entry = by_target.get(target)
            self.layout.mounts.append(
                Mount(
                    mountpoint=target,
                    device=dev.path,
                    fstype=m.fstype,
                    options=m.options,
                    fsroot=m.fsroot,
                    fstab_spec=entry.spec if entry else None,
                    fstab_options=entry.options if entry else None,
                    dump=entry.freq if entry else 0,
                    passno=entry.passno if entry else 0,
                )
            )
        # Active swap devices (a swap file resolves to no device: the backup brings it back),
        # then the ones fstab names, each once under its canonical path.
        active: list[str] = []
        for name in tables.parse_proc_swaps(self.probe.read("/proc/swaps") or ""):
            swap_dev = devs.resolve(name)
            if swap_dev is not None and swap_dev.path not in active:
                active.append(swap_dev.path)
        swaps = list(active)
        for entry in fstab:
            dev = self.resolve_spec(devs, entry.spec)
            if entry.vfstype == "swap":
                if dev is not None and dev.path not in swaps:
                    swaps.append(dev.path)
            elif entry.file not in seen and dev is not None:
                seen.add(entry.file)
                self.layout.mounts.append(
                    Mount(
                        mountpoint=entry.file,
                        device=dev.path,
                        fstype=entry.vfstype,
                        options=entry.options,
                        fstab_spec=entry.spec,
                        fstab_options=entry.options,
                        mounted=False,
                        dump=entry.freq,
                        passno=entry.passno,
                    )
                )
        for swap in swaps:
            dev = devs.resolve(swap)
            if dev is None:
                continue
            entry = next(
                (
                    e
                    for e in fstab
                    if e.vfstype == "swap" and self.resolve_spec(devs, e.spec) is dev
                ),
                None,
            )
            self.layout.mounts.append(
                Mount(
                    mountpoint="swap",
                    device=dev.path,
                    fstype="swap",
                    options=entry.options if entry else [],
                    fstab_spec=entry.spec if entry else None,
                    mounted=swap in active,
                )
            )

    @staticmethod
    def resolve_spec(devs: Devices, spec: str) -> BlockDevice | None:
        key, sep, value = spec.partition("=")
        if sep and key in ("UUID", "LABEL", "PARTUUID", "PARTLABEL"):
            attr = {
                "UUID": "uuid",
                "LABEL": "label",
                "PARTUUID": "partuuid",
                "PARTLABEL": "partlabel",
            }[key]
            value = value.strip('"')
            return next(
                (d for d in devs.all if (getattr(d, attr) or "").lower() == value.lower()), None
            )
        return devs.resolve(spec)

    def unopened_signatures(self, devs: Devices) -> None:
        """A kept device holding a LUKS or RAID signature that nothing is built on (a closed
        container, a member of an array that is not running): the layout cannot describe
        what is inside, so say that recovery recreates the device without it."""
        kept = {p.path for p in self.layout.partitions()} | {
            d.path for d in self.layout.disks if not d.partitions
        }
        kept |= {lv.path for lv in self.layout.lvs} | {md.path for md in self.layout.mds}
        opened = {parent for d in devs.all for parent in d.parents}
        for dev in devs.all:
            held = UNOPENED.get(dev.fstype or "")
            if held and dev.path in kept and dev.path not in opened:
                self.note(
                    f"{dev.path} holds {held}: recovery recreates {dev.path} without it; "
                    "open or assemble it before saving the layout to keep it."
                )

    def boot(self) -> None:
        boot_mod.capture_boot(self.layout, self.probe, self.note, efibootmgr.parse)


def capture(
    root: str = "/",
    *,
    devices: Iterable[str] = (),
    exclude: Iterable[str] = (),
    exclude_disks: Iterable[str] = (),
    everything: bool = False,
    autoexclude: Iterable[str] = (),
    luks_header_dir: str | None = None,
    probe: Probe | None = None,
) -> Layout:
    """Capture the storage stack that `root`'s mounted file systems and swap depend on.

    `devices` limits the scan to these block devices (and what is built on them);
    `exclude` drops components by id or name pattern (a mount point, "/dev/sdb", a VG, an LV
    as "vg/lv") with everything built on them; `exclude_disks` names the backup or rescue
    media disks, never part of a layout; `everything` keeps devices on other disks too;
    `autoexclude` (AUTOEXCLUDE_PATH) leaves out file systems mounted below these paths.
    `luks_header_dir` (off by default) keeps LUKS header backups there.
    """
    devices, exclude, exclude_disks = list(devices), list(exclude), list(exclude_disks)
    autoexclude = list(autoexclude)
    if not os.path.isdir(root):
        # Otherwise no mount lies below it and every disk would look removed.
        what = "is not a directory" if os.path.exists(root) else "does not exist"
        raise UsageError(
            f"The system root {root} {what}: the layout is captured from the mounts below it.",
            hint="Give --root the directory the system to capture is mounted on (default /).",
        )
    cap = Capture(probe or SystemProbe(), root, luks_header_dir)
    out = cap.probe.tool(["lsblk", "-J", "-b", "-O", *devices], what="listing block devices")
    if out is None:
        raise MissingError(
            "lsblk (util-linux) is needed to capture the disk layout.",
            hint="Install util-linux and run mkmedia again.",
        )
    devs = Devices(lsblk.parse(out))
    cap.probe_signatures(devs)
    live_text = cap.probe.tool(
        ["findmnt", "-J", "-l", "-b", "-o", findmnt.COLUMNS], what="listing mounts"
    )
    if live_text is not None:
        live = findmnt.parse(live_text)
    else:
        cap.note("findmnt is missing: mounts read from /proc/self/mounts.")
        live = [
            findmnt.LiveMount(source=e.spec, target=e.file, fstype=e.vfstype, options=e.options)
            for e in tables.parse_fstab(cap.probe.read("/proc/self/mounts") or "")
        ]
    layout = cap.layout
    layout.hostname = socket.gethostname()
    layout.captured_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    cap.disks(devs)
    cap.multipaths(devs)
    cap.mds(devs)
    cap.luks(devs)
    cap.lvm(devs)
    cap.filesystems(devs, live)
    cap.mounts(devs, live)
    cap.boot()
    layout.options = CaptureOptions(
        root=root,
        devices=devices,
        exclude=exclude,
        exclude_disks=exclude_disks,
        everything=everything,
        autoexclude=autoexclude,
    )
    select(
        layout,
        exclude=exclude,
        exclude_disks=exclude_disks,
        everything=everything,
        autoexclude=autoexclude,
    )
    cap.unopened_signatures(devs)
    return layout
