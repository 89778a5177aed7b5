"""`mkmedia finalizeonly` on a real UEFI guest: firmware boot entry, mirrored ESP, LUKS key.

The rescue system boots through OVMF (its kernel as an EFI application, so the EFI variables
are there). In it a small mirrored-ESP machine is built under /mnt/target — an ESP on vda
(mounted at /boot/efi, a loader and the removable fallback path on it) and a copy's ESP on
vdb (not mounted), ext4 root, and /srv/sec on LUKS2 on vdb2 whose key file crypttab names — with a
firmware entry for its loader; `mkmedia layout save` records it. Then the state recover
leaves is made by hand: the entry is deleted, the LUKS volume opens only with a temporary key
in KEY_DIR (as the recreate script leaves it without a header backup), the second ESP is
empty. After mountonly, finalizeonly must write the entry again first in BootOrder, fill the
second ESP, add the crypttab key file and remove the temporary key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from tests.rescue_build import BOOT_TIMEOUT, PROMPT, build_media
from tests.vm.test_layout_guest import blank_disk, sh
from tests.vm.test_mountonly_guest import LAYOUT, RECIPE, T  # the same media and paths

pytestmark = pytest.mark.vm

ESP_UUID = "5eed0001-0000-4000-8000-00000000e5f1"
LUKS_UUID = "5eed0001-0000-4000-8000-00000000c0de"
KEYS = "/run/mkmedia/recreate/keys"  # recreate's KEY_DIR, finalizeonly's default --key-dir
LOADER = "\\EFI\\test\\grubx64.efi"
ENTRY_NUMBER = "efibootmgr | sed -n 's/^Boot\\([0-9A-F]*\\)\\*\\? mkmedia-test.*/\\1/p'"

BUILD: list[tuple[str, str]] = [
    ("quiet console", "set +H; dmesg -n 1; printf %s original-key > /tmp/orig"),
    (
        "partitions",
        f"sgdisk -Z -n 1:1MiB:+32MiB -t 1:ef00 -u 1:{ESP_UUID} -n 2:0:0 -t 2:8300 /dev/vda "
        "&& sgdisk -Z -n 1:1MiB:+32MiB -t 1:ef00 -n 2:0:0 -t 2:8309 /dev/vdb "
        "&& udevadm settle >/dev/null",
    ),
    (
        "file systems and LUKS2",
        "mkfs.vfat -F 32 /dev/vda1 >/dev/null && mkfs.vfat -F 32 /dev/vdb1 >/dev/null "
        "&& mkfs.ext4 -q /dev/vda2 "
        "&& cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
        f"--uuid {LUKS_UUID} --key-file /tmp/orig /dev/vdb2 "
        "&& cryptsetup open --key-file /tmp/orig /dev/vdb2 sec && mkfs.ext4 -q /dev/mapper/sec",
    ),
    (
        "the system: ESP files, key file, crypttab, fstab",
        f"mkdir -p {T} && mount /dev/vda2 {T} && mkdir -p {T}/boot/efi {T}/srv/sec {T}/etc/keys "
        f"&& mount /dev/vda1 {T}/boot/efi && mount /dev/mapper/sec {T}/srv/sec "
        f"&& mkdir -p {T}/boot/efi/EFI/test {T}/boot/efi/EFI/BOOT "
        f"&& echo loader > {T}/boot/efi/EFI/test/grubx64.efi "
        f"&& echo fallback > {T}/boot/efi/EFI/BOOT/BOOTX64.EFI "
        f"&& cp /tmp/orig {T}/etc/keys/sec.key && chmod 0400 {T}/etc/keys/sec.key "
        f"&& echo 'sec UUID={LUKS_UUID} /etc/keys/sec.key luks' > {T}/etc/crypttab "
        f"&& printf '/dev/vda2 / ext4 defaults 0 1\\n/dev/vda1 /boot/efi vfat umask=0077 0 2\\n"
        f"/dev/mapper/sec /srv/sec ext4 defaults 0 2\\n' > {T}/etc/fstab",
    ),
    (
        "the firmware entry",
        f"efibootmgr -q -c -d /dev/vda -p 1 -L mkmedia-test -l '{LOADER}'",
    ),
    ("layout save", f"mkmedia layout save --root {T} {LAYOUT}"),
    (
        "what recover leaves: no entry, a temporary LUKS key only, tear down",
        f'efibootmgr -q -b "$({ENTRY_NUMBER})" -B '
        f"&& umount -R {T} && cryptsetup close sec "
        f"&& mkdir -p {KEYS} && head -c 64 /dev/urandom > {KEYS}/sec.key "
        f"&& cryptsetup luksAddKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
        f"--key-file /tmp/orig /dev/vdb2 {KEYS}/sec.key "
        "&& cryptsetup luksRemoveKey -q /dev/vdb2 /tmp/orig",
    ),
]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("finalize-media"), output="RAMDISK", recipe=RECIPE)


def test_finalizeonly_on_uefi_writes_the_entry_fills_the_mirror_and_keys_luks(
    media: Path, tmp_path: Path
) -> None:
    disks = [blank_disk(tmp_path / f"vd{i}.img", size) for i, size in enumerate((256, 128))]
    machine = Machine(
        firmware="uefi",
        kernel=media / "rescue-kernel",
        initrd=media / "rescue-initrd.img",
        append="console=ttyS0,115200",
        disks=disks,
        network=False,
    )
    log = tmp_path / "console.log"
    with Guest(machine, deadline=3600, console_log=log, name="finalize-uefi") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        assert sh(guest, "ls /sys/firmware/efi/efivars | grep -c BootOrder").strip() == "1"
        for what, command in BUILD:
            sh(guest, command, what)
        assert sh(guest, ENTRY_NUMBER).strip() == "", "the entry was not deleted"
        status, _ = guest.shell("cryptsetup open --test-passphrase --key-file /tmp/orig /dev/vdb2")
        assert status != 0, "the original key still opens the volume"

        sh(guest, f"mkmedia mountonly {LAYOUT} --key-file sec={KEYS}/sec.key", "mountonly")
        out = sh(guest, f"mkmedia finalizeonly {LAYOUT} --unattended", "finalizeonly")
        assert "ESP /dev/vdb1 filled with the 2 files of /dev/vda1" in out, out
        assert "'mkmedia-test' written" in out, out
        assert "removable fallback path kept" in out, out
        assert "LUKS volume sec: opens with the key file /etc/keys/sec.key" in out, out
        assert "initramfs not rebuilt" in out and "WARNING" not in out, out

        # the entry: first in BootOrder, on the ESP's PARTUUID, the same loader
        listing = sh(guest, "efibootmgr -v")
        number = sh(guest, ENTRY_NUMBER).strip()
        order = next(line for line in listing.splitlines() if line.startswith("BootOrder:"))
        assert order.split()[1].split(",")[0] == number, listing
        line = next(x for x in listing.splitlines() if x.startswith(f"Boot{number}"))
        assert ESP_UUID in line.lower() and "\\EFI\\test\\grubx64.efi" in line, line
        # the mirror ESP holds the mounted one's files
        copied = sh(
            guest,
            "mkdir -p /tmp/esp2 && mount /dev/vdb1 /tmp/esp2 && cat /tmp/esp2/EFI/test/grubx64.efi"
            " /tmp/esp2/EFI/BOOT/BOOTX64.EFI && umount /tmp/esp2",
        )
        assert copied.split() == ["loader", "fallback"], copied
        # the key file crypttab names opens the volume; the temporary key is gone
        key = "/mnt/local/etc/keys/sec.key"
        sh(guest, f"cryptsetup open --test-passphrase --key-file {key} /dev/vdb2", "new key")
        status, _ = guest.shell(f"test -e {KEYS}/sec.key")
        assert status != 0, "the temporary key file is still there"
        out = sh(guest, "cryptsetup luksDump /dev/vdb2 | grep -cE '^ +[0-9]+: luks2'")
        assert out.strip() == "1", f"key slots left: {out}"
        logs = sh(guest, "ls -l /mnt/local/var/log/mkmedia/init.log")  # the rescue has no stat
        assert logs.startswith("-rw------- "), logs
        sh(guest, "mkmedia umount", "umount")
