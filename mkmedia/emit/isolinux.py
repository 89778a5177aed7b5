"""ISOLINUX files for the BIOS El Torito entry (Debian packages isolinux and syslinux-common)."""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.errors import MissingError

ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
BIOS_MODULES = Path("/usr/lib/syslinux/modules/bios")
# ldlinux.c32 is the core's second half; menu.c32 draws the menu and needs the two libraries.
MODULES = ("ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32")
# pycdlib's isohybrid MBR checks for this signature (isolinux built for hybrid use).
HYBRID_SIGNATURE = b"\xfb\xc0\x78\x70"


def isolinux_files(
    isolinux_bin: Path = ISOLINUX_BIN, modules_dir: Path = BIOS_MODULES
) -> dict[str, Path]:
    """Name inside the isolinux/ directory -> file on this machine."""
    files = {"isolinux.bin": isolinux_bin}
    files.update({name: modules_dir / name for name in MODULES})
    for name, path in files.items():
        if not path.is_file():
            package = "isolinux" if name == "isolinux.bin" else "syslinux-common"
            raise MissingError(
                f"The BIOS boot loader file {path} is missing (needed as isolinux/{name}).",
                hint=f"Install the Debian package {package}.",
            )
    with open(isolinux_bin, "rb") as stream:
        stream.seek(0x40)
        if stream.read(4) != HYBRID_SIGNATURE:
            raise MissingError(
                f"{isolinux_bin} does not carry ISOLINUX's hybrid signature, so the ISO could "
                "not boot from a USB stick.",
                hint="Use the isolinux.bin of the Debian package isolinux.",
            )
    return files
