"""The storage guest that the layout, recreate and mountonly tests share: rescue media with
the storage tools (tests/data/recipes/vm-storage.yaml or another recipe) booted with blank
disks, commands run in it through the console, and the stacks (STEPS) the layout and recreate
guests build: GPT + LVM, MBR with logical partitions and ESPs, RAID1 + LUKS2 + LVM, thin,
striped and raid1 LVs, btrfs with subvolumes, a job disk below /mnt.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from tests.layout_checks import (
    BTRFS_UUID,
    ESP_VOLIDS,
    GPT_BOOT_PARTUUID,
    GPT_DISK_GUID,
    LUKS_UUID,
    MD_UUID,
    PV_UUID,
    fs_uuid,
)
from tests.rescue_build import REPO, build_media

RECIPE = REPO / "tests" / "data" / "recipes" / "vm-storage.yaml"
PROMPT = r"RESCUE [^\s:]+:[^\n]*# "
# Generous: software emulation on a machine shared with others; not timing assertions.
BOOT_TIMEOUT = 900
STEP_TIMEOUT = 600

# Small XFS file systems (under 300 MB) are refused unless mkfs.xfs believes it runs
# under fstests; these variables are how fstests says so.
SMALL_XFS = "TEST_DIR=/tmp TEST_DEV=/dev/null QA_CHECK_FS=1 mkfs.xfs -q"
# The rescue system has no thin_check or dmeventd (thin-provisioning-tools is not packed):
# LVM would warn at every step; telling it not to use them keeps the console short.
LVM = 'lvm_q() { lvm "$@" --config \'activation/monitoring=0 global/thin_check_executable=""\'; }'

# The virtio disks (MiB) the stacks are built on: vda ... vde; vde is the job disk.
STORAGE_DISKS = (512, 512, 512, 256, 64)
STORAGE_NVME = 256  # nvme0n1: btrfs and a second PV of the thin VG

MBR_SCRIPT = (
    "label: dos\\nlabel-id: 0x5eed000{n}\\n"
    "/dev/{d}1 : start=2048, size=64MiB, type=ef\\n"
    "/dev/{d}2 : size=400MiB, type=5\\n"
    "/dev/{d}5 : size=300MiB, type=fd\\n"
    "/dev/{d}6 : size=64MiB, type=83\\n"
)

# (what, shell command): each must exit 0. Few, long commands: every round trip through the
# emulated console costs time.
STEPS: list[tuple[str, str]] = [
    ("quiet console", f"set +H; dmesg -n 1; {LVM}; printf %s test-passphrase > /tmp/key"),
    (
        "GPT on vda",
        f"sgdisk -Z -n 1:1MiB:+64MiB -t 1:8300 -c 1:boot -u 1:{GPT_BOOT_PARTUUID} "
        f"-n 2:0:+400MiB -t 2:8e00 -c 2:lvm -U {GPT_DISK_GUID} /dev/vda >/dev/null "
        "&& udevadm settle",
    ),
    (
        "MBR with logical partitions on vdb and vdc",
        f"printf '{MBR_SCRIPT.format(n=1, d='vdb')}' | sfdisk -q /dev/vdb "
        f"&& printf '{MBR_SCRIPT.format(n=2, d='vdc')}' | sfdisk -q /dev/vdc "
        "&& udevadm settle",
    ),
    (
        "GPT on the NVMe disk",
        "sgdisk -Z -n 1:1MiB:+128MiB -t 1:8300 -c 1:btr -n 2:0:0 -t 2:8e00 /dev/nvme0n1 "
        ">/dev/null && udevadm settle",
    ),
    (
        "RAID1 + LUKS2",
        "mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 "
        f"--uuid={MD_UUID} --name=secure --bitmap=internal --assume-clean /dev/vdb5 /dev/vdc5 "
        # pbkdf2 with the minimum count: argon2 takes minutes under emulation.
        "&& cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
        f"--cipher aes-xts-plain64 --key-size 512 --uuid {LUKS_UUID} --label seclabel "
        "--key-file /tmp/key /dev/md0 "
        "&& cryptsetup open --key-file /tmp/key /dev/md0 secure",
    ),
    (
        "LVM",
        f"lvm_q pvcreate --uuid {PV_UUID} --norestorefile /dev/vda2 "
        "&& lvm_q vgcreate -s 4M vggpt /dev/vda2 "
        "&& lvm_q lvcreate -y -n root -L 100M vggpt "
        "&& lvm_q lvcreate -y -n data -L 120M vggpt "
        "&& lvm_q lvcreate -y -n swap -L 32M vggpt "
        "&& lvm_q pvcreate /dev/mapper/secure && lvm_q vgcreate vgsec /dev/mapper/secure "
        "&& lvm_q lvcreate -y -n home -L 64M vgsec "
        "&& lvm_q pvcreate /dev/vdd /dev/nvme0n1p2 "
        "&& lvm_q vgcreate vgthin /dev/vdd /dev/nvme0n1p2 "
        "&& lvm_q lvcreate -y --type thin-pool -L 96M -c 64k -n pool vgthin /dev/vdd "
        "&& lvm_q lvcreate -y --type thin -V 200M -n thin1 --thinpool pool vgthin "
        "&& lvm_q lvcreate -y --type thin -V 100M -n thin2 --thinpool pool vgthin "
        "&& lvm_q lvcreate -y -i 2 -I 64k -L 32M -n stripe vgthin "
        "&& lvm_q lvcreate -y --type raid1 -m 1 -L 16M -n mirror vgthin",
    ),
    (
        "file systems",
        f"mkfs.ext4 -q -U {fs_uuid(1)} -L gptboot /dev/vda1 "
        f"&& mkfs.ext4 -q -U {fs_uuid(2)} -L gptroot /dev/vggpt/root "
        f"&& {SMALL_XFS} -m uuid={fs_uuid(3)} -L gptdata /dev/vggpt/data "
        f"&& mkswap -U {fs_uuid(4)} -L gptswap /dev/vggpt/swap >/dev/null "
        f"&& mkfs.ext4 -q -U {fs_uuid(5)} /dev/vgsec/home "
        f"&& mkfs.vfat -F 32 -n ESP -i {ESP_VOLIDS[0]} /dev/vdb1 >/dev/null "
        f"&& mkfs.vfat -F 32 -n ESP -i {ESP_VOLIDS[1]} /dev/vdc1 >/dev/null "
        f"&& mkfs.ext4 -q -U {fs_uuid(7)} /dev/vdb6 "
        f"&& mkfs.ext4 -q -U {fs_uuid(8)} /dev/vgthin/thin1 "
        f"&& {SMALL_XFS} -m uuid={fs_uuid(9)} /dev/vgthin/thin2 "
        f"&& mkfs.ext4 -q -U {fs_uuid(10)} /dev/vgthin/stripe "
        f"&& mkfs.ext4 -q -U {fs_uuid(11)} /dev/vgthin/mirror "
        f"&& mkfs.btrfs -q -f -U {BTRFS_UUID} -L btr /dev/nvme0n1p1 "
        # the job disk
        f"&& sgdisk -Z -n 1:1MiB:0 -t 1:8300 /dev/vde >/dev/null && udevadm settle "
        f"&& mkfs.ext4 -q -U {fs_uuid(12)} /dev/vde1",
    ),
    (
        "btrfs subvolumes and default",
        "mkdir -p /srv/btr-top && mount /dev/nvme0n1p1 /srv/btr-top "
        "&& btrfs -q subvolume create /srv/btr-top/@ "
        "&& btrfs -q subvolume create /srv/btr-top/@home "
        "&& btrfs -q subvolume create /srv/btr-top/@/nested "
        "&& btrfs subvolume set-default /srv/btr-top/@ && umount /srv/btr-top",
    ),
    (
        "mounts and swap",
        "for m in gpt/root gpt/boot gpt/data sec/home mbr/esp mbr/l6 thin/1 thin/2 thin/stripe "
        "thin/mirror btr btr-home; do mkdir -p /srv/$m || exit 1; done "
        "&& mount /dev/vggpt/root /srv/gpt/root && mount /dev/vda1 /srv/gpt/boot "
        "&& mount /dev/vggpt/data /srv/gpt/data && swapon /dev/vggpt/swap "
        "&& mount /dev/vgsec/home /srv/sec/home "
        "&& mount /dev/vdb1 /srv/mbr/esp && mount /dev/vdb6 /srv/mbr/l6 "
        "&& mount /dev/vgthin/thin1 /srv/thin/1 && mount /dev/vgthin/thin2 /srv/thin/2 "
        "&& mount /dev/vgthin/stripe /srv/thin/stripe "
        "&& mount /dev/vgthin/mirror /srv/thin/mirror "
        "&& mount /dev/nvme0n1p1 /srv/btr "
        "&& mount -o subvol=@home /dev/nvme0n1p1 /srv/btr-home "
        "&& mkdir -p /mnt/job && mount /dev/vde1 /mnt/job",
    ),
]


def blank_disk(path: Path, size_mib: int) -> Path:
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
    return path


@contextlib.contextmanager
def storage_guest(
    media: Path,
    tmp: Path,
    sizes: Sequence[int],
    *,
    nvme: int | None = None,
    deadline: float,
    name: str,
) -> Iterator[Guest]:
    """The rescue media booted to its prompt with blank virtio disks of these sizes (MiB),
    vd0.img ... in `tmp`, and an NVMe disk of `nvme` MiB when given; no network."""
    disks = [blank_disk(tmp / f"vd{i}.img", size) for i, size in enumerate(sizes)]
    machine = Machine(
        kernel=media / "rescue-kernel",
        initrd=media / "rescue-initrd.img",
        append="console=ttyS0,115200",
        disks=disks,
        nvme_disks=[blank_disk(tmp / "nvme.img", nvme)] if nvme else [],
        network=False,
    )
    with Guest(machine, deadline=deadline, console_log=tmp / "console.log", name=name) as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        yield guest


def sh(guest: Guest, command: str, what: str = "", timeout: float = STEP_TIMEOUT) -> str:
    status, out = guest.shell(command, timeout)
    assert status == 0, f"{what or command} failed ({status}):\n{out}"
    return out


def fetch(guest: Guest, path: str) -> str:
    """A file's text through the console, checked against its sha256 in the guest."""
    digest = sh(
        guest,
        f'python3 -c \'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb")'
        f".read()).hexdigest())' {path}",
    ).strip()
    text = sh(guest, f"cat {path}")
    assert hashlib.sha256(text.encode()).hexdigest() == digest, "console mangled the file"
    return text


def media_fixture(directory: str, recipe: Path = RECIPE) -> Callable[..., Path]:
    """A module-scoped `media` fixture: RAMDISK media built from `recipe` once per module, in
    a temporary directory named after `directory`."""

    @pytest.fixture(scope="module")
    def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return build_media(tmp_path_factory.mktemp(directory), output="RAMDISK", recipe=recipe)

    return media


@contextlib.contextmanager
def built_guest(
    media: Path,
    tmp: Path,
    sizes: Sequence[int],
    steps: Sequence[tuple[str, str]],
    *,
    nvme: int | None = None,
    deadline: float,
    name: str,
) -> Iterator[Guest]:
    """storage_guest() with every (what, shell command) of `steps` run in it, each checked."""
    with storage_guest(media, tmp, sizes, nvme=nvme, deadline=deadline, name=name) as guest:
        for what, command in steps:
            sh(guest, command, what)
        yield guest
