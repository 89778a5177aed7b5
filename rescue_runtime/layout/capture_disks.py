"""Capture's bottom layer: disks, their partition tables and partitions, and the
signatures of devices capture cannot look inside."""

from __future__ import annotations

import os

from rescue_runtime.layout.capture_base import (
    CONTENT_LINKS,
    DISK_TYPES,
    UNOPENED,
    CaptureBase,
    Devices,
    partition_flags,
    partition_number,
)
from rescue_runtime.layout.model import Disk, Partition
from rescue_runtime.layout.parse import blkid, sfdisk


class DiskLayers(CaptureBase):
    """Disks and partitions."""

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
