"""A GPT partition table written into an image file, byte for byte from its inputs.

Written here rather than by a partitioning tool so that every GUID comes from the caller (a
hash of the build's inputs: reproducible) and no loop device is involved. The protective MBR
carries the BIOS boot code (SYSLINUX's gptmbr.bin, which boots the partition flagged "legacy
BIOS bootable"). Checked in the tests by `sgdisk -v`.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO

SECTOR = 512
ENTRIES = 128
ENTRY_SIZE = 128
ENTRY_SECTORS = ENTRIES * ENTRY_SIZE // SECTOR  # 32
FIRST_USABLE = 2 + ENTRY_SECTORS  # 34
HEADER_SIZE = 92
ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
LEGACY_BIOS_BOOTABLE = 1 << 2
MBR_BOOT_CODE = 440


@dataclass(frozen=True)
class Partition:
    first: int  # LBA
    last: int  # LBA, inclusive
    type: uuid.UUID
    guid: uuid.UUID
    name: str
    attributes: int = 0


def derived_guid(*parts: object) -> uuid.UUID:
    """A version-5 style GUID that depends only on `parts` (reproducible images)."""
    return uuid.uuid5(uuid.NAMESPACE_OID, "\0".join(str(part) for part in parts))


def _entries(partitions: list[Partition]) -> bytes:
    table = bytearray(ENTRIES * ENTRY_SIZE)
    for index, part in enumerate(partitions):
        name = part.name.encode("utf-16-le")[:72].ljust(72, b"\0")
        entry = (
            part.type.bytes_le
            + part.guid.bytes_le
            + part.first.to_bytes(8, "little")
            + part.last.to_bytes(8, "little")
            + part.attributes.to_bytes(8, "little")
            + name
        )
        table[index * ENTRY_SIZE : (index + 1) * ENTRY_SIZE] = entry
    return bytes(table)


def _header(
    current: int, backup: int, entries_lba: int, total: int, disk: uuid.UUID, entries_crc: int
) -> bytes:
    def build(crc: int) -> bytes:
        return (
            b"EFI PART"
            + (0x00010000).to_bytes(4, "little")
            + HEADER_SIZE.to_bytes(4, "little")
            + crc.to_bytes(4, "little")
            + bytes(4)
            + current.to_bytes(8, "little")
            + backup.to_bytes(8, "little")
            + FIRST_USABLE.to_bytes(8, "little")
            + (total - FIRST_USABLE).to_bytes(8, "little")
            + disk.bytes_le
            + entries_lba.to_bytes(8, "little")
            + ENTRIES.to_bytes(4, "little")
            + ENTRY_SIZE.to_bytes(4, "little")
            + entries_crc.to_bytes(4, "little")
        )

    header = build(zlib.crc32(build(0)))
    return header.ljust(SECTOR, b"\0")


def protective_mbr(total: int, boot_code: bytes, signature: int) -> bytes:
    mbr = bytearray(SECTOR)
    mbr[: len(boot_code)] = boot_code[:MBR_BOOT_CODE]
    mbr[440:444] = signature.to_bytes(4, "little")
    sectors = min(total - 1, 0xFFFFFFFF)
    # one partition of type 0xEE over the whole disk; CHS fields "beyond CHS"
    mbr[446:462] = (
        b"\x00\x00\x02\x00\xee\xff\xff\xff"
        + (1).to_bytes(4, "little")
        + sectors.to_bytes(4, "little")
    )
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def write_gpt(
    stream: BinaryIO,
    total_sectors: int,
    partitions: list[Partition],
    *,
    disk_guid: uuid.UUID,
    boot_code: bytes = b"",
) -> None:
    """Write the protective MBR, the primary GPT (LBA 1-33) and the backup GPT (the last 33
    sectors) of a disk of `total_sectors` into `stream`."""
    for part in partitions:
        if part.first < FIRST_USABLE or part.last > total_sectors - FIRST_USABLE:
            raise ValueError(f"partition {part.name} lies outside the usable sectors")
    entries = _entries(partitions)
    crc = zlib.crc32(entries)
    last = total_sectors - 1
    backup_entries = last - ENTRY_SECTORS
    stream.seek(0)
    stream.write(protective_mbr(total_sectors, boot_code, int(disk_guid.hex[:8], 16)))
    stream.write(_header(1, last, 2, total_sectors, disk_guid, crc))
    stream.write(entries)
    stream.seek(backup_entries * SECTOR)
    stream.write(entries)
    stream.write(_header(last, 1, backup_entries, total_sectors, disk_guid, crc))
