"""`mkmedia mountonly` and `mkmedia umount` on real LVM, MD RAID1 + LUKS2 + LVM and btrfs.

Device-mapper does not work on the build machine, so one rescue guest gets four blank disks;
a system's storage is built in it under /mnt/target (root on LVM with /boot, an XFS LV, /home
on LVM inside LUKS2 on a RAID1, two btrfs subvolumes, swap) with a file in every file system
and an fstab naming them by UUID, `mkmedia layout save --root /mnt/target` records it, and
everything is taken down again. Then mountonly must bring it back under /mnt/local from the
layout alone, the interlock must hold, and umount must leave nothing up — also after a run
that failed halfway (wrong LUKS passphrases).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkmedia.qemu import Guest
from tests.layout_checks import fs_uuid
from tests.rescue_build import REPO
from tests.vm import storage
from tests.vm.storage import LVM, SMALL_XFS, STEP_TIMEOUT, sh

pytestmark = pytest.mark.vm

RECIPE = REPO / "tests" / "data" / "recipes" / "vm-mountonly.yaml"
MD_UUID = "77777777:44444444:55555555:66666666"
LUKS_UUID = "22222222-3333-4444-5555-000000000077"
BTRFS_UUID = "44444444-5555-4666-8777-000000000077"
T = "/mnt/target"
LAYOUT = "--dir /tmp/layout"
KEY = "--key-file secure=/tmp/key"
REFUSAL = "the disks are no longer in a known state: reboot the rescue system first"

# mount point -> (fstab spec, type, options); in mount order.
FSTAB = [
    ("/", f"UUID={fs_uuid(2)}", "ext4", "errors=remount-ro"),
    ("/boot", f"UUID={fs_uuid(1)}", "ext4", "defaults"),
    ("/srv/data", f"UUID={fs_uuid(3)}", "xfs", "defaults"),
    ("/home", f"UUID={fs_uuid(5)}", "ext4", "defaults"),
    ("/srv/btr", f"UUID={BTRFS_UUID}", "btrfs", "subvol=@data"),
    ("/srv/btr/logs", f"UUID={BTRFS_UUID}", "btrfs", "subvol=@logs"),
]
FSTAB_TEXT = "".join(f"{s} {m} {t} {o} 0 0\\n" for m, s, t, o in FSTAB) + (
    f"UUID={fs_uuid(4)} none swap sw 0 0\\n"
)


def marker(mountpoint: str) -> str:
    return "marker-" + (mountpoint.strip("/").replace("/", "-") or "root")


BUILD: list[tuple[str, str]] = [
    ("quiet console", f"set +H; dmesg -n 1; {LVM}; printf %s test-passphrase > /tmp/key"),
    (
        "partitions",
        "sgdisk -Z -n 1:1MiB:+64MiB -t 1:8300 -n 2:0:0 -t 2:8e00 /dev/vda >/dev/null "
        "&& sgdisk -Z -n 1:1MiB:0 -t 1:fd00 /dev/vdb >/dev/null "
        "&& sgdisk -Z -n 1:1MiB:0 -t 1:fd00 /dev/vdc >/dev/null && udevadm settle",
    ),
    (
        "RAID1 + LUKS2",
        "mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 "
        f"--uuid={MD_UUID} --name=secure --assume-clean /dev/vdb1 /dev/vdc1 "
        "&& cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
        f"--uuid {LUKS_UUID} --key-file /tmp/key /dev/md0 "
        "&& cryptsetup open --key-file /tmp/key /dev/md0 secure",
    ),
    (
        "LVM",
        "lvm_q pvcreate /dev/vda2 && lvm_q vgcreate vggpt /dev/vda2 "
        "&& lvm_q lvcreate -y -n root -L 100M vggpt && lvm_q lvcreate -y -n data -L 120M vggpt "
        "&& lvm_q lvcreate -y -n swap -L 32M vggpt "
        "&& lvm_q pvcreate /dev/mapper/secure && lvm_q vgcreate vgsec /dev/mapper/secure "
        "&& lvm_q lvcreate -y -n home -L 64M vgsec",
    ),
    (
        "file systems",
        f"mkfs.ext4 -q -U {fs_uuid(1)} /dev/vda1 "
        f"&& mkfs.ext4 -q -U {fs_uuid(2)} /dev/vggpt/root "
        f"&& {SMALL_XFS} -m uuid={fs_uuid(3)} /dev/vggpt/data "
        f"&& mkswap -U {fs_uuid(4)} /dev/vggpt/swap >/dev/null "
        f"&& mkfs.ext4 -q -U {fs_uuid(5)} /dev/vgsec/home "
        f"&& mkfs.btrfs -q -f -U {BTRFS_UUID} /dev/vdd "
        "&& mkdir -p /mnt/top && mount /dev/vdd /mnt/top "
        "&& btrfs -q subvolume create /mnt/top/@data && btrfs -q subvolume create /mnt/top/@logs "
        "&& mkdir /mnt/top/@data/logs && umount /mnt/top",
    ),
    (
        "mounts, files, fstab and a busybox for the chroot",
        f"mkdir -p {T} && mount /dev/vggpt/root {T} "
        f"&& mkdir -p {T}/boot {T}/srv/data {T}/home {T}/srv/btr {T}/etc {T}/bin "
        f"&& mount /dev/vda1 {T}/boot && mount /dev/vggpt/data {T}/srv/data "
        f"&& mount /dev/vgsec/home {T}/home && mount -o subvol=@data /dev/vdd {T}/srv/btr "
        f"&& mount -o subvol=@logs /dev/vdd {T}/srv/btr/logs "
        + "".join(f"&& echo {marker(m)} > {T}{m.rstrip('/')}/{marker(m)} " for m, *_ in FSTAB)
        + f"&& printf '{FSTAB_TEXT}' > {T}/etc/fstab "
        f'&& cp "$(command -v busybox)" {T}/bin/busybox',
    ),
    ("layout save", f"mkmedia layout save --root {T} {LAYOUT}"),
    (
        "tear down",
        f"umount -R {T} && lvm_q vgchange -an vggpt vgsec && cryptsetup close secure "
        "&& mdadm --stop /dev/md0 && udevadm settle",
    ),
]


def nothing_up(guest: Guest) -> None:
    """No mount under /mnt/local, no device-mapper device, no MD array, no swap."""
    out = sh(
        guest,
        "findmnt -rn -o TARGET | grep -c '^/mnt/local' ; ls /sys/block | grep -c '^dm-' ; "
        "grep -c '^md' /proc/mdstat ; tail -n +2 /proc/swaps | wc -l ; "
        "test -e /run/mkmedia/activate.json && echo state-left || echo no-state",
    )
    assert out.split() == ["0", "0", "0", "0", "no-state"], out


media = storage.media_fixture("mountonly-media", RECIPE)


@pytest.fixture(scope="module")
def guest(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    tmp = tmp_path_factory.mktemp("mountonly-guest")
    disks = (512, 256, 256, 256)
    with storage.built_guest(media, tmp, disks, BUILD, deadline=3600, name="mountonly") as g:
        nothing_up(g)
        yield g


def test_mountonly_interlock_umount_and_partial(guest: Guest) -> None:
    """One test: every step works on what the one before left in the guest."""
    out = sh(guest, f"mkmedia mountonly {LAYOUT} {KEY}", "mountonly")
    assert "chroot /mnt/local" in out and "swap not activated" in out, out
    # Every file in its file system, at its mount point under /mnt/local.
    for mountpoint, *_ in FSTAB:
        path = f"/mnt/local{mountpoint.rstrip('/')}/{marker(mountpoint)}"
        assert sh(guest, f"cat {path}").strip() == marker(mountpoint), path
    sources = sh(guest, "findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS | grep '^/mnt/local'")
    table = {line.split()[0]: line.split()[1:] for line in sources.splitlines()}
    for mountpoint, _spec, fstype, _opts in FSTAB:
        target = "/mnt/local" + mountpoint.rstrip("/")
        assert table[target][1] == fstype and "rw" in table[target][2].split(","), table
    assert table["/mnt/local/srv/btr"][0].endswith("[/@data]"), table
    assert table["/mnt/local/srv/btr/logs"][0].endswith("[/@logs]"), table
    assert table["/mnt/local/home"][0] == "/dev/mapper/vgsec-home", table
    for pseudo in ("proc", "sys", "dev", "run"):
        assert f"/mnt/local/{pseudo}" in table, table
    # A command in the chroot sees the target's files and the bound /proc and /dev.
    inside = sh(
        guest,
        "chroot /mnt/local /bin/busybox cat /marker-root /proc/self/mounts "
        "&& chroot /mnt/local /bin/busybox ls /dev/vda",
    )
    assert "marker-root" in inside and "/dev/vda" in inside, inside
    assert re.search(r"^\S+ /srv/btr/logs btrfs ", inside, re.M), inside
    assert sh(guest, "tail -n +2 /proc/swaps | wc -l").strip() == "0"
    mounts_before = len(table)

    # The interlock: a second mountonly and recover refuse; --force goes on with a warning.
    for command in (f"mkmedia mountonly {LAYOUT} {KEY}", "mkmedia recover"):
        status, out = guest.shell(command, STEP_TIMEOUT)
        assert status != 0 and REFUSAL in out, out
    status, out = guest.shell("mkmedia dump >/dev/null", STEP_TIMEOUT)
    assert status == 0, out
    out = sh(guest, f"mkmedia mountonly {LAYOUT} {KEY} --force 2>&1", "mountonly --force")
    assert "warning: the disks are no longer in a known state" in out, out
    again = sh(guest, "findmnt -rn -o TARGET | grep -c '^/mnt/local'").strip()
    assert int(again) == mounts_before, "a forced second mountonly mounted things twice"

    out = sh(guest, "mkmedia umount", "umount")
    nothing_up(guest)
    out = sh(guest, "mkmedia umount", "umount with nothing up")
    assert "nothing" in out, out

    # Device names that differ from the saved ones: found by UUID (the array assembled by
    # its UUID under the name the layout gives it).
    sh(
        guest,
        "mkdir -p /tmp/renamed && sed 's#/dev/vda#/dev/vdx#g; s#/dev/vdb#/dev/vdy#g; "
        "s#/dev/md0#/dev/md9#g' /tmp/layout/layout.json > /tmp/renamed/layout.json",
    )
    out = sh(guest, f"mkmedia mountonly --dir /tmp/renamed {KEY} --force", "renamed devices")
    assert "assembled /dev/md9" in out and "mounted /dev/vda1 on /mnt/local/boot" in out, out
    for mountpoint, *_ in FSTAB:
        path = f"/mnt/local{mountpoint.rstrip('/')}/{marker(mountpoint)}"
        assert sh(guest, f"cat {path}").strip() == marker(mountpoint), path
    sh(guest, "mkmedia umount", "umount after the renamed layout")
    nothing_up(guest)

    # Read-only: every file system mounted ro, nothing can be written.
    sh(guest, f"mkmedia mountonly {LAYOUT} {KEY} --ro --force", "mountonly --ro")
    ro = sh(guest, "findmnt -rn -o TARGET,OPTIONS | grep '^/mnt/local'")
    for mountpoint, *_ in FSTAB:
        target = "/mnt/local" + mountpoint.rstrip("/")
        assert f"{target} ro," in ro, ro
    status, out = guest.shell("echo new > /mnt/local/home/new", STEP_TIMEOUT)
    assert status != 0 and "Read-only file system" in out, out
    sh(guest, "mkmedia umount", "umount after --ro")
    nothing_up(guest)

    # Partial: three wrong passphrases for the LUKS volume stop mountonly halfway (after the
    # root LV, its mounts and the array are up); umount must still take it all down.
    status, out = guest.shell(
        f"printf 'wrong\\nwrong\\nwrong\\n' | mkmedia mountonly {LAYOUT} --force", STEP_TIMEOUT
    )
    assert status != 0 and "No passphrase opened the LUKS volume secure" in out, out
    assert len(re.findall(r"wrong passphrase \(\d/3\)", out)) == 3, out
    up = sh(guest, "findmnt -rn -o TARGET | grep -c '^/mnt/local'; grep -c '^md' /proc/mdstat")
    assert [int(n) > 0 for n in up.split()] == [True, True], up
    sh(guest, "mkmedia umount", "umount after the partial mountonly")
    nothing_up(guest)
