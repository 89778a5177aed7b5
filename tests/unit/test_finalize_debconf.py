"""Debian's grub-pc answer (where its upgrades reinstall GRUB) follows the disks GRUB was
installed on: a stale by-id name is replaced, a current one is left, nothing is invented."""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.recover import finalize_debconf
from tests.files import write_file

OLD_ID = "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001"
CONFIG = f"""\
Name: debconf/frontend
Template: debconf/frontend
Value: Noninteractive
Owners: debconf
Flags: seen

Name: grub-pc/install_devices
Template: grub-pc/install_devices
Value: {OLD_ID}
Owners: grub-pc
Variables:
 CHOICES = x

Name: grub-pc/install_devices_empty
Template: grub-pc/install_devices_empty
Value: false
Owners: grub-pc

"""
LINKS = {
    "/dev/disk/by-id/nvme-eui.0123456789abcdef": "/dev/nvme0n1",
    "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_serial1": "/dev/nvme0n1",
    "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_serial1-part1": "/dev/nvme0n1p1",
    "/dev/disk/by-path/pci-0000:00:04.0-nvme-1": "/dev/nvme0n1",
}


def config(target: Path, text: str = CONFIG) -> Path:
    return write_file(target / finalize_debconf.CONFIG_DAT, text, mode=0o600)


def test_a_gone_disk_is_replaced_by_the_new_disks_serial_name(
    tmp_path: Path, recover_report: Path
) -> None:
    path = config(tmp_path)
    notes = finalize_debconf.follow_grub_disks(tmp_path, ["/dev/nvme0n1"], LINKS)
    new = "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_serial1"
    assert finalize_debconf.install_devices(tmp_path) == [new]
    text = path.read_text()
    # only the one stanza's value changed, it is marked seen, the rest is as it was
    assert text == CONFIG.replace(f"Value: {OLD_ID}", f"Value: {new}").replace(
        " CHOICES = x\n", " CHOICES = x\nFlags: seen\n"
    )
    assert path.stat().st_mode & 0o777 == 0o600
    assert notes == [
        f"rewritten /{finalize_debconf.CONFIG_DAT}: grub-pc/install_devices '{OLD_ID}' -> "
        f"'{new}' (grub-pc's upgrades reinstall GRUB on these disks)"
    ]
    assert f"[rewrite] /{finalize_debconf.CONFIG_DAT}" in recover_report.read_text()


def test_both_disks_of_a_mirror_and_the_kernel_name_without_a_by_id_link(tmp_path: Path) -> None:
    config(tmp_path)
    finalize_debconf.follow_grub_disks(tmp_path, ["/dev/nvme0n1", "/dev/vdb"], LINKS)
    assert finalize_debconf.install_devices(tmp_path) == [
        "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_serial1",
        "/dev/vdb",
    ]


def test_an_answer_that_names_the_disks_still_is_left(tmp_path: Path) -> None:
    text = CONFIG.replace(OLD_ID, "/dev/disk/by-id/nvme-eui.0123456789abcdef")
    path = config(tmp_path, text)
    notes = finalize_debconf.follow_grub_disks(tmp_path, ["/dev/nvme0n1"], LINKS)
    assert path.read_text() == text
    assert notes[0].startswith("debconf grub-pc/install_devices names the disks GRUB is on")


def test_no_grub_pc_or_no_answer_changes_nothing(tmp_path: Path) -> None:
    assert finalize_debconf.follow_grub_disks(tmp_path, ["/dev/nvme0n1"], LINKS) == []
    text = CONFIG.replace(f"Value: {OLD_ID}\n", "")
    path = config(tmp_path, text)
    assert finalize_debconf.follow_grub_disks(tmp_path, ["/dev/nvme0n1"], LINKS) == []
    assert path.read_text() == text
