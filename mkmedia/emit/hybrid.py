"""The hybrid image's partition table: an MBR that BIOS and UEFI firmware both boot from.

pycdlib's isohybrid writes the ISOLINUX boot code and partition 1 (type 0, the whole image). Its
EFI variant also writes a GPT whose partition array CRC is wrong, whose backup header carries
another disk GUID, and whose backup copy can land on the last ISO9660 blocks when the cylinder
padding is short. So we ask pycdlib for the BIOS part only and add partition 2 ourselves: type
0xEF over the FAT image, which UEFI firmware boots when the file is written to a USB stick. No
GPT claims at all: the image is a plain MBR disk, as checkers (sfdisk, fdisk, sgdisk) read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SECTOR = 512
SYSTEM_AREA = 16 * 2048  # ISO9660 leaves the first 16 blocks to the system (the MBR lives there)
PARTITION_TABLE = 446
ESP_TYPE = 0xEF
# the geometry pycdlib's isohybrid uses for partition 1
HEADS = 64
SECTORS_PER_TRACK = 32


@dataclass(frozen=True)
class MbrPartition:
    number: int
    bootable: bool
    type: int
    start: int  # sectors
    sectors: int


def mbr_partitions(path: Path) -> list[MbrPartition]:
    with open(path, "rb") as stream:
        mbr = stream.read(SECTOR)
    if mbr[510:512] != b"\x55\xaa":
        return []
    parts = []
    for number in range(1, 5):
        raw = mbr[PARTITION_TABLE + 16 * (number - 1) : PARTITION_TABLE + 16 * number]
        start = int.from_bytes(raw[8:12], "little")
        sectors = int.from_bytes(raw[12:16], "little")
        if sectors:
            parts.append(MbrPartition(number, raw[0] == 0x80, raw[4], start, sectors))
    return parts


def _chs(lba: int) -> bytes:
    cylinder, rest = divmod(lba, HEADS * SECTORS_PER_TRACK)
    if cylinder > 1023:
        return b"\xfe\xff\xff"  # beyond CHS: firmware uses the LBA fields
    head, sector = divmod(rest, SECTORS_PER_TRACK)
    return bytes([head, ((sector + 1) & 0x3F) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF])


def iso9660_size(stream: BinaryIO) -> int:
    """Bytes the ISO9660 volume covers (volume space size of the primary descriptor)."""
    stream.seek(SYSTEM_AREA)
    pvd = stream.read(2048)
    if pvd[1:6] != b"CD001":
        raise ValueError("no ISO9660 primary volume descriptor at 32 KiB")
    blocks = int.from_bytes(pvd[80:84], "little")
    block_size = int.from_bytes(pvd[128:130], "little")
    return blocks * block_size


def add_esp_partition(path: Path, start: int, sectors: int, number: int = 2) -> None:
    """Write MBR entry `number` as an EFI system partition over [start, start + sectors)."""
    entry = (
        b"\x00"
        + _chs(start)
        + bytes([ESP_TYPE])
        + _chs(start + sectors - 1)
        + start.to_bytes(4, "little")
        + sectors.to_bytes(4, "little")
    )
    with open(path, "r+b") as stream:
        stream.seek(SECTOR - 2)
        if stream.read(2) != b"\x55\xaa":
            raise ValueError(f"{path} has no MBR to add the EFI partition to")
        if (start + sectors) * SECTOR > iso9660_size(stream):
            raise ValueError("the EFI partition would reach past the ISO9660 volume")
        stream.seek(PARTITION_TABLE + 16 * (number - 1))
        stream.write(entry)
        stream.flush()
        os.fsync(stream.fileno())
