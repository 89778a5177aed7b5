"""The stick's partition table, written through pyparted (libparted) on a device or an image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rescue_runtime.backup import usbstick
from rescue_runtime.errors import ConfigError, MissingError

SECTOR = 512
MIB_SECTORS = 1024 * 1024 // SECTOR
BIOS_GRUB_MIB = 1
# FAT32 needs 65525 clusters: with 512-byte clusters that is 32 MiB and a little more.
ESP_MIB = 64
DATA_LABEL = usbstick.DATA_LABEL  # what usb:// backups find the stick by
# the smallest data partition worth having: one rescue image with room to spare
MIN_DATA_MIB = 64

MODES = ("both", "bios", "efi")


@dataclass(frozen=True)
class Part:
    """One partition: number, role (bios_grub | esp | data), first sector and sector count."""

    number: int
    role: str
    start: int
    sectors: int

    @property
    def offset(self) -> int:
        return self.start * SECTOR

    @property
    def size(self) -> int:
        return self.sectors * SECTOR


@dataclass(frozen=True)
class Plan:
    mode: str
    parts: tuple[Part, ...]

    def part(self, role: str) -> Part | None:
        return next((p for p in self.parts if p.role == role), None)

    def data(self) -> Part:
        data = self.part("data")
        assert data is not None
        return data


def plan(total_sectors: int, mode: str, esp_mib: int = ESP_MIB) -> Plan:
    """Where each partition goes on a disk of `total_sectors` (1 MiB aligned; the GPT's
    backup copy keeps the last 33 sectors)."""
    if mode not in MODES:
        raise ConfigError(
            f"The boot mode {mode!r} is not one of {', '.join(MODES)}.",
            hint="Use --efi, --bios or --both.",
        )
    roles: list[tuple[str, int]] = []
    if mode in ("both", "bios"):
        roles.append(("bios_grub", BIOS_GRUB_MIB))
    if mode in ("both", "efi"):
        roles.append(("esp", esp_mib))
    parts = []
    start = MIB_SECTORS
    for number, (role, mib) in enumerate(roles, start=1):
        parts.append(Part(number, role, start, mib * MIB_SECTORS))
        start += mib * MIB_SECTORS
    end = (total_sectors - 34) // MIB_SECTORS * MIB_SECTORS  # exclusive, aligned down
    if end - start < MIN_DATA_MIB * MIB_SECTORS:
        need = (start + MIN_DATA_MIB * MIB_SECTORS + MIB_SECTORS) // MIB_SECTORS
        raise ConfigError(
            f"The disk has {total_sectors * SECTOR // (1024 * 1024)} MiB, too small for the "
            f"boot partitions and a data partition of at least {MIN_DATA_MIB} MiB.",
            hint=f"Use a stick or image of at least {need} MiB.",
        )
    parts.append(Part(len(parts) + 1, "data", start, end - start))
    return Plan(mode, tuple(parts))


def write_table(path: Path, layout: Plan) -> None:
    """A fresh GPT with the planned partitions; the protective MBR gets the boot flag."""
    _parted()
    import parted

    device = parted.getDevice(str(path))
    try:
        disk = parted.freshDisk(device, "gpt")
        for part in layout.parts:
            geometry = parted.Geometry(
                device=device, start=part.start, end=part.start + part.sectors - 1
            )
            fs_type = {"esp": "fat32", "data": "ext4"}.get(part.role)
            fs = parted.FileSystem(type=fs_type, geometry=geometry) if fs_type else None
            partition = parted.Partition(
                disk=disk, type=parted.PARTITION_NORMAL, fs=fs, geometry=geometry
            )
            disk.addPartition(partition, constraint=parted.Constraint(exactGeom=geometry))
            partition.set_name({"bios_grub": "BIOS", "esp": "EFI"}.get(part.role, DATA_LABEL))
            if part.role == "bios_grub":
                partition.setFlag(parted.PARTITION_BIOS_GRUB)
            elif part.role == "esp":
                partition.setFlag(parted.PARTITION_BOOT)  # on GPT: the ESP type
        if layout.mode != "efi":
            # some BIOSes boot only a disk whose MBR has an active entry
            disk.setFlag(parted.DISK_GPT_PMBR_BOOT)
        disk.commit()
    finally:
        device.removeFromCache()


def _parted() -> None:
    try:
        import parted  # noqa: F401 - only whether it is there
    except ImportError as exc:
        raise MissingError(
            "The Python module parted (pyparted) is not installed, so mkmedia cannot read or "
            "write partition tables.",
            hint="Install mkmedia with its dependencies (pip install pyparted; it builds "
            "against the Debian packages libparted-dev and pkg-config).",
        ) from exc


def read_table(path: Path) -> Plan | None:
    """The stick layout `write_table` made, read back; None when `path` holds no such table."""
    _parted()
    import parted

    device = parted.getDevice(str(path))
    try:
        try:
            disk = parted.newDisk(device)
        except parted.PartedException:
            return None
        if disk.type != "gpt":
            return None
        parts = []
        for partition in disk.partitions:
            name = partition.name or ""
            role = {"BIOS": "bios_grub", "EFI": "esp", DATA_LABEL: "data"}.get(name)
            if role is None:
                continue
            geometry = partition.geometry
            parts.append(Part(partition.number, role, geometry.start, geometry.length))
    finally:
        device.removeFromCache()
    roles = {part.role for part in parts}
    if "data" not in roles:
        return None
    mode = "both" if {"bios_grub", "esp"} <= roles else ("bios" if "bios_grub" in roles else "efi")
    return Plan(mode, tuple(parts))
