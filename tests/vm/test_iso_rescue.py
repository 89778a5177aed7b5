"""End to end: `mkmedia build` writes the ISO with the real rescue initrd, and it boots to the
rescue prompt (BIOS from CD through isolinux; UEFI with Secure Boot enforced through shim and
the signed GRUB). The firmware matrix with a tiny initrd is in test_iso_boot.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mkmedia.qemu import Machine, which_firmware
from tests.rescue_build import boot_to_prompt, build_media

pytestmark = pytest.mark.vm


def built_iso(workdir: Path, *sets: str) -> Path:
    out = build_media(workdir, output="ISO", sets=("BOOT_DEFAULT=rescue", *sets))
    manifest = json.loads((out / "manifest.json").read_text())
    (iso,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "iso"]
    return iso


def test_bios_cd_boots_the_rescue_system(tmp_path: Path) -> None:
    iso = built_iso(tmp_path)
    cmdline = boot_to_prompt(
        Machine(firmware="bios", cdrom=iso, boot_order="d"), tmp_path / "console.log"
    )
    assert "console=ttyS0,115200" in cmdline and "unattended" not in cmdline.split()


def test_uefi_secure_boot_cd_boots_the_rescue_system(tmp_path: Path) -> None:
    if not which_firmware(["uefi-secure"]):
        pytest.skip("OVMF with Secure Boot keys is not installed")
    iso = built_iso(tmp_path, "SECURE_BOOT=yes")
    cmdline = boot_to_prompt(
        Machine(firmware="uefi-secure", cdrom=iso, boot_order="d"), tmp_path / "console.log"
    )
    assert "console=ttyS0,115200" in cmdline
