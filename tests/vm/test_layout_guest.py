"""Disk layout capture on real device-mapper, MD RAID, LUKS, LVM and btrfs stacks.

Device-mapper does not work on the build machine, so one rescue guest (built with
tests/data/recipes/vm-storage.yaml) gets six blank disks; the stacks are built inside it,
mounted under /srv, and `mkmedia layout save` / `show --json` / `checklayout` run there, with
the rescue system's configuration (AUTOEXCLUDE_PATH's default among it). The verdicts
compare the capture with what the commands below created (sizes, UUIDs, names).

Disks: vda GPT + LVM (ext4, xfs, swap); vdb and vdc MBR with logical partitions, an ESP on
each first partition (the one on vdc a copy, not mounted), a RAID1 of their fifth
partitions, LUKS2 on it, LVM inside; vdd (whole disk) and the NVMe disk's second partition
one VG with a thin pool and thin volumes, a striped and a raid1 LV; the NVMe disk's first
partition btrfs with subvolumes and a default subvolume; vde a job disk mounted under /mnt,
which AUTOEXCLUDE_PATH leaves out.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import subprocess
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from mkmedia.qemu import Guest, Machine
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import from_json
from tests.layout_checks import (
    BTRFS_UUID,
    CHECKS,
    ESP_VOLIDS,
    GPT_BOOT_PARTUUID,
    GPT_DISK_GUID,
    LUKS_UUID,
    MD_UUID,
    PV_UUID,
    fs_uuid,
)
from tests.rescue_build import REPO, build_media

pytestmark = pytest.mark.vm

RECIPE = REPO / "tests" / "data" / "recipes" / "vm-storage.yaml"
REPLAY_DIR = REPO / "tests" / "data" / "layout" / "guest"
# Set to a file name to re-record the replay data (guest/replay.json) from this guest.
RECORD_ENV = "MKMEDIA_LAYOUT_RECORD"
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


def record_replay(guest: Guest, target: Path) -> None:
    """Run tests/data/layout/guest/record.py in the guest and bring its replay.json out
    (zlib + hex through the console: the rescue Python has zlib and binascii, not base64)."""
    script = binascii.hexlify(zlib.compress((REPLAY_DIR / "record.py").read_bytes(), 9))
    sh(
        guest,
        'python3 -c \'import binascii,sys,zlib; open("/tmp/record.py","wb").write('
        f"zlib.decompress(binascii.unhexlify(sys.argv[1])))' {script.decode()} "
        "&& python3 /tmp/record.py /tmp/replay.json",
        "record.py",
    )
    digest = sh(guest, "sha256sum /tmp/replay.json").split()[0]
    hexed = sh(
        guest,
        "python3 -c 'import binascii,zlib; h=binascii.hexlify(zlib.compress(open("
        '"/tmp/replay.json","rb").read(), 9)).decode(); '
        "[print(h[i:i+100]) for i in range(0, len(h), 100)]'",
    )
    data = zlib.decompress(binascii.unhexlify("".join(hexed.split())))
    assert hashlib.sha256(data).hexdigest() == digest, "console mangled replay.json"
    target.write_bytes(data)


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


@dataclass
class Stacks:
    guest: Guest
    layout: Layout
    save_output: str


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("storage-media"), output="RAMDISK", recipe=RECIPE)


@pytest.fixture(scope="module")
def stacks(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    tmp = tmp_path_factory.mktemp("layout-guest")
    sizes = (512, 512, 512, 256, 64)
    with storage_guest(media, tmp, sizes, nvme=256, deadline=3600, name="storage") as guest:
        for what, command in STEPS:
            sh(guest, command, what)
        save = sh(guest, "mkmedia layout save --dir /tmp/layout", "layout save")
        sh(guest, "mkmedia layout show --json --dir /tmp/layout > /tmp/shown.json")
        layout = from_json(fetch(guest, "/tmp/shown.json"), source="the guest's layout")
        if os.environ.get(RECORD_ENV):
            record_replay(guest, Path(os.environ[RECORD_ENV]))
        yield Stacks(guest, layout, save)


def test_save_reports_no_missing_tools(stacks: Stacks) -> None:
    assert "layout saved to /tmp/layout" in stacks.save_output
    # Every layer's tool ran: a missing one would leave a "not installed" note.
    assert not [n for n in stacks.layout.notes if "not installed" in n], stacks.layout.notes


@pytest.mark.parametrize("stack", sorted(CHECKS))
def test_stack_captured(stacks: Stacks, stack: str) -> None:
    CHECKS[stack](stacks.layout)


def test_checklayout_unchanged_lv_grown_partition_added(stacks: Stacks) -> None:
    """Against the layout the fixture saved: 0 while nothing changed, then 1 with the
    readable difference after each change (one test: the changes accumulate in the guest)."""
    guest = stacks.guest
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 0 and "layout unchanged" in out, out
    sh(guest, "lvm_q lvextend -L +8M vggpt/root")
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 1, out
    grown = "changed: lv:vggpt/root size: 104857600 (100.0 MiB) -> 113246208 (108.0 MiB)"
    assert grown in out, out
    sh(guest, "sgdisk -n 3:0:+8MiB -t 3:8300 /dev/vda >/dev/null && udevadm settle")
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 1, out
    assert "added: part:/dev/vda3" in out and grown in out, out


def test_unmounted_lv_is_kept_and_checklayout_names_it(stacks: Stacks) -> None:
    """An LV nothing mounts (a raw database volume, a VM's disk) must not be lost: a new one
    is a difference, and a fresh capture keeps it, marked unmounted."""
    guest = stacks.guest
    sh(guest, "lvm_q lvcreate -y -n probe -L 8M vggpt")
    status, out = guest.shell("mkmedia checklayout --dir /tmp/layout", STEP_TIMEOUT)
    assert status == 1 and "added: lv:vggpt/probe" in out, out
    shown = sh(
        guest,
        "mkmedia layout show --current --json | python3 -c 'import json,sys; "
        '[print("unmounted", lv["vg"] + "/" + lv["name"]) for lv in json.load(sys.stdin)["lvs"]'
        ' if lv["unmounted"]]\'',
    )
    assert [line for line in shown.splitlines() if line.startswith("unmounted")] == [
        "unmounted vggpt/probe"
    ], shown
