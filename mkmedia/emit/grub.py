"""GRUB for the UEFI entry: a small GRUB image we build, or the distribution's signed chain.

Without Secure Boot we build GRUB with grub-mkimage: only the modules the menu needs, all built
in, and an embedded config that finds the medium by a marker file (no memdisk, no fonts: about
0.7 MB, and byte-for-byte reproducible). With Secure Boot we use shim, the signed GRUB and the
host's signed kernel; the signed GRUB reads /EFI/debian/grub.cfg from the device it was loaded
from, so that file goes both into the FAT image and into the ISO9660 tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mkmedia.emit import bootmenu
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.run import require, run

GRUB_EFI_MODULES_DIR = Path("/usr/lib/grub/x86_64-efi")
# What the menu's commands need on every platform (UEFI here, BIOS in mkmedia/usb/bootloader.py),
# last in each module list.
MENU_MODULES = ("echo", "test", "sleep", "reboot", "halt", "gzio", "ls", "cat")
EFI_MODULES = (
    "normal",
    "configfile",
    "linux",
    "search",
    "search_fs_file",
    "iso9660",
    "fat",
    "part_msdos",
    "part_gpt",
    "serial",
    "terminal",
    "efi_gop",
    *MENU_MODULES,
)

SHIM = Path("/usr/lib/shim/shimx64.efi.signed")
MOK_MANAGER = Path("/usr/lib/shim/mmx64.efi.signed")
SIGNED_GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
# Debian's signed network GRUB: its configuration is /grub/grub.cfg on the TFTP server.
SIGNED_NET_GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
# Where the signed (Debian) GRUB looks for its configuration on its boot device.
SIGNED_GRUB_CONFIG = "EFI/debian/grub.cfg"
SECURE_BOOT_VAR = Path("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")


@dataclass(frozen=True)
class EfiFiles:
    """Path inside the FAT image -> file on this machine."""

    files: dict[str, Path]


# A network boot image adds the UEFI network driver and the protocols the kernel comes over.
NET_MODULES = (*EFI_MODULES, "efinet", "tftp", "http")


@dataclass(frozen=True)
class GrubPlatform:
    """Where grub-mkimage finds one platform's modules (its --format is the directory's name)."""

    directory: Path
    probe: str  # a file there that the Debian package `package` installs
    package: str
    missing: str  # what is missing without it, in the error message
    firmware: str  # "UEFI" or "BIOS", as the boot loader is named in messages


EFI_PLATFORM = GrubPlatform(
    GRUB_EFI_MODULES_DIR, "normal.mod", "grub-efi-amd64-bin", "UEFI modules", "UEFI"
)


def mkimage(
    platform: GrubPlatform,
    output: Path,
    *,
    prefix: str,
    config: Path | None,
    modules: Sequence[str],
) -> Path:
    """grub-mkimage for `platform` with `modules` built in and an embedded `config` (None:
    none) that replaces `prefix` at run time."""
    tool = require("grub-mkimage", package="grub-common")
    if not (platform.directory / platform.probe).is_file():
        raise MissingError(
            f"GRUB's {platform.missing} are missing from {platform.directory}.",
            hint=f"Install the Debian package {platform.package}.",
        )
    run(
        [
            tool,
            f"--format={platform.directory.name}",
            f"--directory={platform.directory}",
            f"--output={output}",
            f"--prefix={prefix}",  # the embedded config, if any, replaces it at run time
            *([f"--config={config}"] if config else []),
            *modules,
        ],
        what=f"building the {platform.firmware} boot loader",
    )
    return output


def build_grub_efi(
    output: Path,
    early_config: Path | None,
    *,
    prefix: str = "/boot/grub",
    modules: Sequence[str] = EFI_MODULES,
) -> Path:
    """grub-mkimage for x86_64-efi with the menu's modules and an embedded early config
    (None: none; a `prefix` without a device then means the device GRUB was loaded from)."""
    return mkimage(EFI_PLATFORM, output, prefix=prefix, config=early_config, modules=modules)


def plain_efi_files(grub_efi: Path) -> EfiFiles:
    return EfiFiles({"EFI/BOOT/BOOTX64.EFI": grub_efi})


def signed_chain(grub_image: Path = SIGNED_GRUB) -> dict[str, Path]:
    """shim, the MOK manager and a signed GRUB under the names shim loads them by."""
    needed = (
        (SHIM, "shim-signed"),
        (MOK_MANAGER, "shim-signed"),
        (grub_image, "grub-efi-amd64-signed"),
    )
    for path, package in needed:
        if not path.is_file():
            raise MissingError(
                f"The signed boot loader {path} is missing, so no Secure Boot medium can be built.",
                hint=f"Install the Debian package {package}, or set secure_boot: false.",
            )
    return {"BOOTX64.EFI": SHIM, "grubx64.efi": grub_image, "mmx64.efi": MOK_MANAGER}


def secure_boot_efi_files(find_medium_cfg: Path) -> EfiFiles:
    files = {f"EFI/BOOT/{name}": path for name, path in signed_chain().items()}
    return EfiFiles({**files, SIGNED_GRUB_CONFIG: find_medium_cfg})


def host_secure_boot(var: Path = SECURE_BOOT_VAR) -> bool:
    """True when this host booted with UEFI Secure Boot enforced (for `secure_boot: auto`)."""
    try:
        data = var.read_bytes()
    except OSError:
        return False
    # efivarfs: 4 bytes of attributes, then the one-byte value
    return len(data) >= 5 and data[4] == 1


def kernel_is_signed(kernel: Path) -> bool:
    """Whether a PE/COFF kernel image carries an Authenticode signature (certificate table)."""
    with open(kernel, "rb") as stream:
        head = stream.read(4096)
    if head[:2] != b"MZ" or len(head) < 0x40:
        return False
    pe = int.from_bytes(head[0x3C:0x40], "little")
    if head[pe : pe + 4] != b"PE\0\0":
        return False
    optional = pe + 24
    magic = int.from_bytes(head[optional : optional + 2], "little")
    # data directory 4 (certificate table) of the optional header: PE32+ at 112, PE32 at 96
    directories = optional + (112 if magic == 0x20B else 96)
    entry = directories + 4 * 8
    size = int.from_bytes(head[entry + 4 : entry + 8], "little")
    return size > 0


def require_signed_kernel(kernel: Path) -> None:
    """ConfigError unless the kernel carries the signature Secure Boot firmware checks."""
    if not kernel_is_signed(kernel):
        raise ConfigError(
            f"secure_boot is on but the kernel {kernel} carries no signature, so Secure Boot "
            "firmware would refuse to start it.",
            hint="Use the distribution's signed kernel (Debian: linux-image-amd64), or set "
            "secure_boot: false.",
        )


def medium_efi_files(marker: str, secure_boot: bool, work: Path) -> EfiFiles:
    """The ESP's files for a medium GRUB finds by its marker file: our GRUB with the search
    built in, or (Secure Boot) shim's chain with the same search in EFI/debian/grub.cfg, which
    the caller also puts on the medium itself (SIGNED_GRUB_CONFIG)."""
    find_medium = work / "find-medium.cfg"
    find_medium.write_text(
        bootmenu.render("grub-find-medium.cfg.j2", marker=marker, load_menu=secure_boot)
    )
    if secure_boot:
        return secure_boot_efi_files(find_medium)
    return plain_efi_files(build_grub_efi(work / "bootx64.efi", find_medium))
