"""Firmware mode, boot loaders and EFI boot entries.

BIOS: GRUB2 is recognised by its boot code in a disk's first sector. UEFI: the loaders on
the mounted ESP (shim, GRUB, systemd-boot) and `efibootmgr -v`'s entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rescue_runtime.layout.model import BootLoader, Layout
from rescue_runtime.layout.parse.efibootmgr import EfiBoot
from rescue_runtime.layout.probe import Probe

SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
EFI_LOADERS = {
    "shimx64.efi": "shim",
    "shimaa64.efi": "shim",
    "shim.efi": "shim",
    "grubx64.efi": "grub2-efi",
    "grubaa64.efi": "grub2-efi",
    "systemd-bootx64.efi": "systemd-boot",
    "systemd-bootaa64.efi": "systemd-boot",
}


def mbr_has_grub(disk: str) -> bool:
    """GRUB2's boot.img carries the string "GRUB " in its first 440 bytes."""
    try:
        with open(disk, "rb") as f:
            return b"GRUB" in f.read(440)
    except OSError:
        return False


def esp_loaders(esp_mountpoint: str) -> list[BootLoader]:
    found: dict[str, BootLoader] = {}
    efi = os.path.join(esp_mountpoint, "EFI")
    if not os.path.isdir(efi):
        return []
    for directory, _dirs, files in sorted(os.walk(efi)):
        for name in sorted(files):
            kind = EFI_LOADERS.get(name.lower())
            if kind is None:
                continue
            loader = found.setdefault(kind, BootLoader(kind=kind, location=esp_mountpoint))
            rel = os.path.relpath(os.path.join(directory, name), esp_mountpoint)
            loader.files.append("/" + rel)
    return list(found.values())


def capture_boot(
    layout: Layout,
    probe: Probe,
    note: Callable[[str], None],
    parse_efi: Callable[[str], EfiBoot],
) -> None:
    boot = layout.boot
    boot.firmware = "uefi" if os.path.isdir("/sys/firmware/efi") else "bios"
    if boot.firmware == "bios":
        for disk in layout.disks:
            if mbr_has_grub(disk.path):
                boot.loaders.append(BootLoader(kind="grub2-bios", location=disk.path))
        return
    try:
        with open(SECURE_BOOT_VAR, "rb") as f:
            boot.secure_boot = f.read()[-1:] == b"\x01"
    except OSError:
        boot.secure_boot = None
    esp_parts = {p.path for p in layout.partitions() if "esp" in p.flags}
    for mount in layout.mounts:
        if mount.device in esp_parts and mount.mounted:
            boot.loaders += esp_loaders(mount.mountpoint)
    out = probe.tool(["efibootmgr", "-v"], what="reading the EFI boot entries")
    if out is None:
        note("efibootmgr is not installed: EFI boot entries not captured.")
        return
    efi = parse_efi(out)
    boot.efi_entries, boot.boot_order, boot.boot_current = efi.entries, efi.order, efi.current
