"""GRUB on the stick: i386-pc (boot.img in the MBR, core.img in the bios_grub partition) and
x86_64-efi (our GRUB, or shim + the signed GRUB), both finding the data partition's menu.

grub-install wants a mounted /boot and a real device; instead we do what grub-bios-setup does
for a GPT disk with a bios_grub partition: boot.img's code goes into the first 440 bytes of
the MBR (the disk signature and the partition table stay) with the LBA of core.img patched in,
and core.img's first sector (diskboot.img) gets the block list of the rest of core.img.
"""

from __future__ import annotations

from pathlib import Path

from mkmedia.emit import bootmenu, grub
from mkmedia.usb.partition import SECTOR, Part
from rescue_runtime.errors import MkmediaError

GRUB_PC_DIR = Path("/usr/lib/grub/i386-pc")
PC_MODULES = (
    "biosdisk",
    "part_gpt",
    "part_msdos",
    "ext2",
    "fat",
    "search",
    "search_fs_file",
    "configfile",
    "normal",
    "linux",
    "chain",
    "serial",
    "terminal",
    *grub.MENU_MODULES,
)
PC_PLATFORM = grub.GrubPlatform(GRUB_PC_DIR, "boot.img", "grub-pc-bin", "BIOS files", "BIOS")
# the UEFI GRUB we build reads the data partition too
EFI_MODULES = (*grub.EFI_MODULES, "ext2")

# grub-core/boot/i386/pc/boot.S and diskboot.S
_BOOT_CODE = 440  # MBR bytes before the disk signature
_KERNEL_SECTOR = 0x5C  # boot.img: 64-bit LBA of core.img's first sector
_BLOCKLIST_START = 0x1F4  # diskboot.img: 64-bit LBA of the rest of core.img
_BLOCKLIST_LEN = 0x1FC  # ... and its length in sectors (16 bits)


def early_config(work: Path, marker: str) -> Path:
    """The config built into GRUB (and the signed GRUB's EFI/debian/grub.cfg): find the data
    partition by the stick's marker file, then read the menu there."""
    path = work / "find-stick.cfg"
    path.write_text(bootmenu.render("grub-find-medium.cfg.j2", marker=marker, load_menu=True))
    return path


def build_pc_core(output: Path, config: Path) -> Path:
    return grub.mkimage(PC_PLATFORM, output, prefix="/boot/grub", config=config, modules=PC_MODULES)


def install_pc(target: Path, core: Path, bios_grub: Part) -> None:
    """boot.img into the MBR and core.img into the bios_grub partition of `target`."""
    data = bytearray(core.read_bytes())
    data += bytes(-len(data) % SECTOR)
    sectors = len(data) // SECTOR
    if sectors > bios_grub.sectors or sectors > 0xFFFF:
        raise MkmediaError(
            f"GRUB's BIOS core image has {sectors} sectors, more than the bios_grub partition "
            f"({bios_grub.sectors}) holds.",
            hint="Report this: the module list in mkmedia/usb/bootloader.py grew too large.",
        )
    data[_BLOCKLIST_START : _BLOCKLIST_START + 8] = (bios_grub.start + 1).to_bytes(8, "little")
    data[_BLOCKLIST_LEN : _BLOCKLIST_LEN + 2] = (sectors - 1).to_bytes(2, "little")
    boot = bytearray((GRUB_PC_DIR / "boot.img").read_bytes()[:_BOOT_CODE])
    boot[_KERNEL_SECTOR : _KERNEL_SECTOR + 8] = bios_grub.start.to_bytes(8, "little")
    with open(target, "r+b") as stream:
        stream.seek(bios_grub.offset)
        stream.write(data)
        stream.seek(0)
        stream.write(boot)


def esp_files(work: Path, config: Path, *, secure_boot: bool) -> dict[str, Path]:
    """What goes into the ESP: path in the FAT -> file here."""
    if secure_boot:
        return grub.secure_boot_efi_files(config).files
    efi = grub.build_grub_efi(work / "bootx64.efi", config, modules=EFI_MODULES)
    return grub.plain_efi_files(efi).files
