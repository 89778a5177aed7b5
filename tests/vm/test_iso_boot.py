"""Boot the hybrid ISO in QEMU (software emulation) on BIOS and UEFI, from CD and as a disk.

Every boot must reach the test initrd's prompt over the serial console, with the kernel command
line of the menu entry the configuration selects. Timeouts are generous: two shared cores under
TCG; they are not timing assertions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, GuestError, Machine, which_firmware

pytestmark = pytest.mark.vm

ISO_MARKER = "MKMEDIA-RESCUE-PROMPT"  # printed by the test initrd (conftest.py)
ISO_LOCAL_MARKER = "LOCAL-DISK-BOOTED"  # printed by the local disk's boot sector
BOOT_TIMEOUT = 420.0
DEADLINE = 600.0


def need(firmware: str) -> None:
    if not which_firmware([firmware]):
        pytest.skip(f"firmware {firmware} is not installed")


def guest(machine: Machine, log: Path) -> Guest:
    """Use as `with guest(...) as g:`; entering starts QEMU, leaving kills it by pid."""
    return Guest(machine, deadline=DEADLINE, console_log=log, name="rescue ISO guest")


def reach_prompt(running: Guest) -> str:
    """Wait for the test initrd's marker and shell prompt; return the kernel command line."""
    running.expect(ISO_MARKER, timeout=BOOT_TIMEOUT)
    cmdline = running.expect(r"CMDLINE: ([^\r\n]*)\r?\n", timeout=120).group(1)
    running.expect(r"/ # ", timeout=120)
    # Keystrokes can be lost while the shell sets up its line editing: press Enter until a
    # fresh prompt answers, then the console is in step.
    for _attempt in range(6):
        running.send("\r")
        try:
            running.expect(r"\r?\n/ # ", timeout=30)
            return cmdline
        except GuestError:
            continue
    raise GuestError(f"The rescue shell never answered on the serial console:\n{running.tail()}")


def assert_rescue_entry(cmdline: str) -> None:
    assert "mkmedia.test=1" in cmdline
    assert "console=tty0 console=ttyS0,115200" in cmdline
    assert "unattended" not in cmdline.split()


@pytest.mark.parametrize(
    ("firmware", "medium"),
    [("bios", "cd"), ("uefi", "cd"), ("bios", "disk"), ("uefi", "disk")],
)
def test_boots_to_rescue_prompt(
    firmware: str, medium: str, iso_build: Callable[..., Path], tmp_path: Path
) -> None:
    need(firmware)
    iso = iso_build("rescue")
    if medium == "cd":
        machine = Machine(firmware=firmware, cdrom=iso, boot_order="d", network=False)
    else:
        machine = Machine(firmware=firmware, boot_disk=iso, network=False)
    with guest(machine, tmp_path / "console.log") as running:
        assert_rescue_entry(reach_prompt(running))
        status, output = running.shell("echo shell-$((6 * 7))", timeout=120)
        assert status == 0 and "shell-42" in output


def blank_el_torito(iso: Path, copy: Path) -> Path:
    """A copy whose boot catalog is invalid: firmware must use the MBR's EFI partition."""
    shutil.copyfile(iso, copy)
    with open(copy, "r+b") as stream:
        stream.seek(17 * 2048)
        record = stream.read(2048)
        assert record[1:6] == b"CD001" and record[7:30] == b"EL TORITO SPECIFICATION"
        catalog = int.from_bytes(record[0x47:0x4B], "little")
        stream.seek(catalog * 2048)
        stream.write(bytes(64))  # validation entry and initial entry
    return copy


def test_uefi_partition_path_without_el_torito(
    iso_build: Callable[..., Path], tmp_path: Path
) -> None:
    need("uefi")
    disk = blank_el_torito(iso_build("rescue"), tmp_path / "no-eltorito.iso")
    machine = Machine(firmware="uefi", boot_disk=disk, network=False)
    with guest(machine, tmp_path / "console.log") as running:
        assert_rescue_entry(reach_prompt(running))


def test_secure_boot_from_cd(iso_build: Callable[..., Path], tmp_path: Path) -> None:
    need("uefi-secure")
    iso = iso_build("secure", secure_boot=True)
    machine = Machine(firmware="uefi-secure", cdrom=iso, boot_order="d", network=False)
    with guest(machine, tmp_path / "console.log") as running:
        assert_rescue_entry(reach_prompt(running))
        status, output = running.shell("dmesg | grep -i 'secure boot'", timeout=120)
        assert status == 0 and "Secure boot enabled" in output, output


def test_default_entry_boots_the_local_disk(
    iso_build: Callable[..., Path], iso_local_disk: Path, tmp_path: Path
) -> None:
    """BOOT_DEFAULT=local: after the timeout the BIOS boots the local disk, not the rescue."""
    need("bios")
    iso = iso_build("local", boot_default="local")
    machine = Machine(
        firmware="bios", cdrom=iso, disks=[iso_local_disk], boot_order="dc", network=False
    )
    with guest(machine, tmp_path / "console.log") as running:
        running.expect("Boot from the first local disk", timeout=BOOT_TIMEOUT)  # the menu
        running.expect(ISO_LOCAL_MARKER, timeout=BOOT_TIMEOUT)
        assert ISO_MARKER not in running.output
