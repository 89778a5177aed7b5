"""`mkmedia format` on an image file, then two `mkmedia build` runs with OUTPUT=USB: the stick
keeps both rescue images, its menu lists them newest first, and BIOS (SeaBIOS) and UEFI (OVMF)
boot it attached as a USB disk (xHCI usb-storage) to the rescue prompt."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine, which_firmware
from mkmedia.usb import menu
from mkmedia.usb.fs import DataFs
from mkmedia.usb.partition import read_table
from tests.rescue_build import REPO, boot_to_prompt, build_media

pytestmark = pytest.mark.vm

# Under a starved TCG guest the kernel's IO-APIC timer check can fail and panic; the check
# proves nothing about the medium.
SETS = ("BOOT_DEFAULT=rescue", "KERNEL_CMDLINE=no_timer_check")
LOCAL_MARKER = "LOCAL-DISK-BOOTED"  # printed by the iso_local_disk fixture's boot sector


class Stick:
    def __init__(self, image: Path, outputs: list[Path]) -> None:
        self.image = image
        self.outputs = outputs  # output directory of each build, oldest first
        table = read_table(image)
        assert table is not None
        self.data = DataFs(image, table.data())

    def menu_dirs(self) -> list[str]:
        text = self.data.read(menu.MENU) or ""
        return list(dict.fromkeys(re.findall(r"linux (/rescue/\S+)/vmlinuz", text)))


def format_image(work: Path, *sets: str) -> Path:
    """`mkmedia format` on a new sparse image file, through the real command."""
    image = work / "stick.img"
    argv = [sys.executable, "-m", "mkmedia", "format", str(image), "--size", "320M", "--yes"]
    argv += ["-c", str(work / "etc"), "--log-file", str(work / "format.log")]
    for item in (f"LAYOUT_DIR={work / 'layout'}", *sets):
        argv += ["--set", item]
    env = {**os.environ, "MKMEDIA_LOCK_FILE": str(work / "lock")}
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return image


@pytest.fixture(scope="module")
def stick(tmp_path_factory: pytest.TempPathFactory) -> Stick:
    work = tmp_path_factory.mktemp("usb")
    image = format_image(work)
    outputs = [
        build_media(work / f"build{n}", output="USB", sets=(*SETS, f"USB_DEVICE={image}"))
        for n in (1, 2)
    ]
    return Stick(image, outputs)


def test_both_images_on_the_stick_newest_first(stick: Stick) -> None:
    dirs = stick.menu_dirs()
    assert len(dirs) == 2 and dirs == sorted(dirs, reverse=True), dirs
    for directory in dirs:
        assert sorted(stick.data.listdir(directory)) == ["initrd", "vmlinuz"]
    # the marker the rescue systems were built to look for their medium by
    assert any(name.startswith("id-") for name in stick.data.listdir("/mkmedia"))
    # each build's manifest names what it put on the stick, with size and sha256
    for output, directory in zip(stick.outputs, reversed(dirs), strict=True):
        manifest = json.loads((output / "manifest.json").read_text())
        kinds = {a["kind"]: a for a in manifest["artifacts"]}
        assert kinds["usb-initrd"]["path"] == f"{stick.image}:{directory}/initrd"
        assert kinds["usb-kernel"]["size"] > 0 and len(kinds["usb-initrd"]["sha256"]) == 64
        menu_file = Path(kinds["usb-menu"]["path"])
        assert menu_file.is_file() and menu_file.stat().st_size == kinds["usb-menu"]["size"]


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_boots_from_usb_to_the_rescue_prompt(stick: Stick, firmware: str, tmp_path: Path) -> None:
    if not which_firmware([firmware]):
        pytest.skip(f"firmware {firmware} is not installed")
    newest, older = stick.menu_dirs()
    machine = Machine(firmware=firmware, usb_disk=stick.image, network=False)
    cmdline = boot_to_prompt(machine, tmp_path / "console.log")
    assert f"{newest}/vmlinuz" in cmdline and "console=ttyS0,115200" in cmdline
    # GRUB drew the menu on the serial console: both images were offered
    console = (tmp_path / "console.log").read_bytes().decode(errors="replace")
    for directory in (newest, older):
        stamp = directory.rsplit("/", 1)[1]
        when = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"
        assert when in console, when


def test_secure_boot_stick_boots_through_shim(tmp_path: Path) -> None:
    """SECURE_BOOT=yes: shim and the signed GRUB on the ESP, which finds the stick's menu."""
    if not which_firmware(["uefi-secure"]):
        pytest.skip("OVMF with Secure Boot keys is not installed")
    image = format_image(tmp_path, "SECURE_BOOT=yes")
    sets = (*SETS, f"USB_DEVICE={image}", "SECURE_BOOT=yes")
    build_media(tmp_path / "build", output="USB", sets=sets)
    machine = Machine(firmware="uefi-secure", usb_disk=image, network=False)
    cmdline = boot_to_prompt(machine, tmp_path / "console.log")  # checks "Secure boot enabled"
    assert "/rescue/" in cmdline and "console=ttyS0,115200" in cmdline


def test_build_refuses_secure_boot_on_a_plain_stick(tmp_path: Path) -> None:
    image = format_image(tmp_path)
    with pytest.raises(AssertionError, match="formatted without the signed"):
        build_media(
            tmp_path / "build", output="USB", sets=(f"USB_DEVICE={image}", "SECURE_BOOT=yes")
        )


def test_bios_default_local_entry_boots_the_next_disk(iso_local_disk: Path, tmp_path: Path) -> None:
    """BOOT_DEFAULT=local: GRUB (BIOS) chain-loads the second disk's MBR after the timeout."""
    image = format_image(tmp_path)
    build_media(
        tmp_path / "build", output="USB", sets=(f"USB_DEVICE={image}", "BOOT_DEFAULT=local")
    )
    machine = Machine(firmware="bios", usb_disk=image, disks=[iso_local_disk], network=False)
    with Guest(machine, deadline=900, console_log=tmp_path / "console.log", name="USB") as guest:
        guest.expect("Boot from the first local disk", timeout=600)  # GRUB's menu
        guest.expect(LOCAL_MARKER, timeout=300)
        assert "Linux version" not in guest.output
