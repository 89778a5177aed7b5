"""Recreate layer 1: wipe a disk and write its partition table with sfdisk.

The sfdisk script carries everything the table had: label and label-id (disk GUID or MBR
id), first/last usable LBA, and per partition the exact start and size in sectors (so the
alignment is the original's), type, PARTUUID, name, attribute bits, the bootable flag, and
MBR logical partitions inside their extended one (sfdisk writes the EBRs).
"""

from __future__ import annotations

from rescue_runtime.layout.model import Disk, Partition
from rescue_runtime.recover.recreate_block import Block


def sfdisk_value(text: str) -> str:
    """A quoted sfdisk field value (names may hold spaces and commas)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def partition_line(part: Partition, table: str, sector: int) -> str:
    fields = [f"start={part.start // sector}", f"size={part.size // sector}", f"type={part.type}"]
    if table == "gpt":
        if part.uuid:
            fields.append(f"uuid={part.uuid.upper()}")
        if part.name:
            fields.append(f"name={sfdisk_value(part.name)}")
        if part.attrs:
            fields.append(f"attrs={sfdisk_value(part.attrs)}")
    elif "boot" in part.flags:
        fields.append("bootable")
    return f"{part.path} : " + ", ".join(fields)


def sfdisk_script(disk: Disk) -> str:
    table = disk.table or "gpt"
    sector = disk.logical_sector_size or 512
    lines = [f"label: {table}"]
    if disk.table_id:
        lines.append(f"label-id: {disk.table_id}")
    lines += [f"device: {disk.path}", "unit: sectors", f"sector-size: {sector}"]
    if table == "gpt" and disk.first_lba is not None:
        lines.append(f"first-lba: {disk.first_lba}")
    if table == "gpt" and disk.last_lba is not None:
        lines.append(f"last-lba: {disk.last_lba}")
    lines.append("")
    lines += [
        partition_line(p, table, sector) for p in sorted(disk.partitions, key=lambda p: p.number)
    ]
    return "\n".join(lines) + "\n"


def disk_block(disk: Disk) -> Block:
    what = f"{disk.table} table, {len(disk.partitions)} partitions" if disk.table else "no table"
    block = Block(disk.id, f"disk {disk.path}: {what}")
    # The old table and whatever signatures sit at the disk's start and end.
    block.run("wipefs", "--all", "--force", disk.path)
    if disk.table is None:
        return block
    # --wipe-partitions: a new partition at an old one's offset must not bring back the old
    # stack's signature (an MD superblock or PV label would be assembled by udev).
    block.run(
        "sfdisk",
        "--quiet",
        "--wipe",
        "always",
        "--wipe-partitions",
        "always",
        disk.path,
        stdin=sfdisk_script(disk),
    )
    # sfdisk's own re-read can fail (a loop device without partition scanning, a disk the
    # kernel holds): partprobe tells the kernel partition by partition.
    block.run("partprobe", disk.path)
    for part in sorted(disk.partitions, key=lambda p: p.number):
        block.run("wait_dev", part.path)
        if part.kind != "extended":  # its first sector is the EBR chain sfdisk just wrote
            block.run("wipefs", "--all", "--force", part.path)
    return block
