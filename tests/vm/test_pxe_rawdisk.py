"""End to end: `mkmedia build` with OUTPUT=PXE and OUTPUT=RAWDISK, booted in QEMU (software
emulation) to the rescue prompt.

PXE goes through QEMU's built-in DHCP/TFTP server (`-netdev user,tftp=...,bootfile=...`) with
a NIC whose MAC is the one the build was told (PXE_CLIENTS): the per-MAC file is what selects
the host's menu, since the tree's `default` file only offers the local disk; a client with
another MAC must get that menu. RAWDISK boots the raw image as the first disk on BIOS (gptmbr ->
SYSLINUX) and UEFI (GRUB on the ESP).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mkmedia.emit.pxe import write_pxe
from mkmedia.qemu import Guest, Machine, which_firmware
from tests.ciskip import SLOW, opt_in
from tests.rescue_build import BOOT_TIMEOUT, boot_to_prompt, build_media

pytestmark = pytest.mark.vm

CLIENT_MAC = "52:54:00:6d:6b:01"
STRANGER_MAC = "52:54:00:6d:6b:99"


def need(firmware: str) -> None:
    if not which_firmware([firmware]):
        pytest.skip(f"firmware {firmware} is not installed")


def manifest_paths(out: Path, kind: str) -> list[Path]:
    manifest = json.loads((out / "manifest.json").read_text())
    return [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == kind]


@pytest.fixture(scope="module")
def pxe_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("pxe-build")
    out = build_media(work, output="PXE", sets=("BOOT_DEFAULT=rescue", f"PXE_CLIENTS={CLIENT_MAC}"))
    assert (out / "pxelinux.cfg" / "01-52-54-00-6d-6b-01").is_file()
    assert (out / "grub" / "grub.cfg-01-52-54-00-6d-6b-01").is_file()
    assert out / "rescue" / "initrd" in manifest_paths(out, "pxe")
    return out


def pxe_machine(firmware: str, tree: Path, mac: str) -> Machine:
    bios = firmware == "bios"
    return Machine(
        firmware=firmware,
        tftp_dir=tree,
        bootfile="pxelinux.0" if bios else "bootx64.efi",
        mac=mac,
        nic_rom=bios,  # SeaBIOS boots the network through the NIC's iPXE ROM; OVMF by itself
        boot_order="n",
    )


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_pxe_boots_the_hosts_menu_by_mac(firmware: str, pxe_tree: Path, tmp_path: Path) -> None:
    need(firmware)
    machine = pxe_machine(firmware, pxe_tree, CLIENT_MAC)
    cmdline = boot_to_prompt(machine, tmp_path / "console.log")
    assert "rescue/vmlinuz" in cmdline and "console=ttyS0,115200" in cmdline
    assert "unattended" not in cmdline.split()


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_pxe_finds_the_host_by_ip_in_hex(firmware: str, pxe_tree: Path, tmp_path: Path) -> None:
    """A tree that names the client only by the address QEMU's DHCP server hands out
    (10.0.2.15: 0A00020F), booted with a MAC it does not know."""
    opt_in(
        SLOW, "PXE by IP in hex (the by-MAC boots and the unit tests of the names run by default)"
    )
    need(firmware)
    host = pxe_tree / "rescue"
    write_pxe(
        tmp_path / "tftp",
        kernel=host / "vmlinuz",
        initrd=host / "initrd",
        host="vmtest",
        host_dir="rescue",
        clients=["10.0.2.15"],
        boot_default="rescue",
        boot_timeout=1,
        work_dir=tmp_path / "work",
    )
    assert (tmp_path / "tftp" / "pxelinux.cfg" / "0A00020F").is_file()
    machine = pxe_machine(firmware, tmp_path / "tftp", STRANGER_MAC)
    assert "rescue/vmlinuz" in boot_to_prompt(machine, tmp_path / "console.log")


def test_pxe_stranger_gets_only_the_local_disk(pxe_tree: Path, tmp_path: Path) -> None:
    """Another MAC falls through to pxelinux.cfg/default: no rescue system is offered."""
    opt_in(SLOW, "a PXE boot with an unknown MAC")
    need("bios")
    machine = pxe_machine("bios", pxe_tree, STRANGER_MAC)
    with Guest(machine, deadline=BOOT_TIMEOUT, console_log=tmp_path / "console.log") as guest:
        guest.expect("no rescue system for this machine", BOOT_TIMEOUT)
        assert "Rescue system for" not in guest.output


def test_pxe_secure_boot(tmp_path: Path) -> None:
    """shim -> Debian's signed network GRUB -> the signed kernel, over TFTP."""
    opt_in(SLOW, "PXE with Secure Boot (USB and ISO Secure Boot boots run by default)")
    need("uefi-secure")
    out = build_media(
        tmp_path,
        output="PXE",
        sets=("BOOT_DEFAULT=rescue", f"PXE_CLIENTS={CLIENT_MAC}", "SECURE_BOOT=yes"),
    )
    assert (out / "grubx64.efi").is_file() and (out / "mmx64.efi").is_file()
    cmdline = boot_to_prompt(pxe_machine("uefi-secure", out, CLIENT_MAC), tmp_path / "console.log")
    assert "rescue/vmlinuz" in cmdline


def test_ramdisk_files_boot_directly(tmp_path: Path) -> None:
    """OUTPUT=RAMDISK's three files are all a hypervisor needs: -kernel, -initrd, -append."""
    out = build_media(tmp_path, output="RAMDISK")
    append = (out / "rescue-cmdline").read_text().strip()
    assert "console=ttyS0,115200" in append
    machine = Machine(kernel=out / "rescue-kernel", initrd=out / "rescue-initrd.img", append=append)
    assert append in boot_to_prompt(machine, tmp_path / "console.log")


@pytest.fixture(scope="module")
def rawdisk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rawdisk-build")
    out = build_media(work, output="RAWDISK", sets=("BOOT_DEFAULT=rescue", "RAWDISK_FORMAT=both"))
    (image,) = manifest_paths(out, "rawdisk")
    assert manifest_paths(out, "qcow2") == [out / "rescue.qcow2"]
    return image


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_rawdisk_boots(firmware: str, rawdisk: Path, tmp_path: Path) -> None:
    need(firmware)
    machine = Machine(firmware=firmware, boot_disk=rawdisk, network=False)
    cmdline = boot_to_prompt(machine, tmp_path / "console.log")
    assert "/boot/vmlinuz" in cmdline and "console=ttyS0,115200" in cmdline


def test_rawdisk_secure_boot(tmp_path: Path) -> None:
    """shim -> signed GRUB -> signed kernel from the image's ESP, Secure Boot enforced."""
    opt_in(SLOW, "RAWDISK with Secure Boot")
    need("uefi-secure")
    out = build_media(tmp_path, output="RAWDISK", sets=("BOOT_DEFAULT=rescue", "SECURE_BOOT=yes"))
    (image,) = manifest_paths(out, "rawdisk")
    machine = Machine(firmware="uefi-secure", boot_disk=image, network=False)
    assert "/boot/vmlinuz" in boot_to_prompt(machine, tmp_path / "console.log")
