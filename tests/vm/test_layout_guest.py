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
import hashlib
import os
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from mkmedia.qemu import Guest, Machine
from rescue_runtime.layout.model import Layout
from rescue_runtime.layout.serial import from_json
from tests.rescue_build import REPO, build_media

pytestmark = pytest.mark.vm
T = TypeVar("T")

RECIPE = REPO / "tests" / "data" / "recipes" / "vm-storage.yaml"
REPLAY_DIR = REPO / "tests" / "data" / "layout" / "guest"
# Set to a file name to re-record the replay data (guest/replay.json) from this guest.
RECORD_ENV = "MKMEDIA_LAYOUT_RECORD"
PROMPT = r"RESCUE [^\s:]+:[^\n]*# "
# Generous: software emulation on a machine shared with others; not timing assertions.
BOOT_TIMEOUT = 900
STEP_TIMEOUT = 600
MiB = 1024 * 1024

GPT_DISK_GUID = "6a1c0b8e-1111-4d2e-9a3b-0000000000aa"
GPT_BOOT_PARTUUID = "6a1c0b8e-1111-4d2e-9a3b-000000000001"
PV_UUID = "AAAAAA-1111-2222-3333-4444-5555-666666"
MD_UUID = "33333333:44444444:55555555:66666666"
LUKS_UUID = "22222222-3333-4444-5555-000000000001"
BTRFS_UUID = "44444444-5555-4666-8777-000000000001"
ESP_VOLIDS = ("5EED0001", "5EED0002")  # vfat volume ids of vdb1 (mounted) and vdc1 (copy)


def fs_uuid(n: int) -> str:
    return f"11111111-2222-4333-8444-{n:012d}"


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
    disks = [blank_disk(tmp / f"vd{i}.img", size) for i, size in enumerate(sizes)]
    machine = Machine(
        kernel=media / "rescue-kernel",
        initrd=media / "rescue-initrd.img",
        append="console=ttyS0,115200",
        disks=disks,
        nvme_disks=[blank_disk(tmp / "nvme.img", 256)],
        network=False,
    )
    with Guest(machine, deadline=3600, console_log=tmp / "console.log", name="storage") as guest:
        guest.expect(PROMPT, BOOT_TIMEOUT)
        for what, command in STEPS:
            sh(guest, command, what)
        save = sh(guest, "mkmedia layout save --dir /tmp/layout", "layout save")
        sh(guest, "mkmedia layout show --json --dir /tmp/layout > /tmp/shown.json")
        layout = from_json(fetch(guest, "/tmp/shown.json"), source="the guest's layout")
        if os.environ.get(RECORD_ENV):
            record_replay(guest, Path(os.environ[RECORD_ENV]))
        yield Stacks(guest, layout, save)


def by_path(items: list[T], attr: str = "path") -> dict[str, T]:
    return {getattr(i, attr): i for i in items}


def test_save_reports_no_missing_tools(stacks: Stacks) -> None:
    assert "layout saved to /tmp/layout" in stacks.save_output
    # Every layer's tool ran: a missing one would leave a "not installed" note.
    assert not [n for n in stacks.layout.notes if "not installed" in n], stacks.layout.notes


def check_gpt_lvm(layout: Layout) -> None:
    vda = layout.disk("/dev/vda")
    assert vda is not None and vda.table == "gpt" and vda.size == 512 * MiB
    assert (vda.table_id or "").lower() == GPT_DISK_GUID
    boot, lvm_part = vda.partitions
    assert (boot.path, boot.number, boot.start, boot.size) == ("/dev/vda1", 1, MiB, 64 * MiB)
    assert boot.name == "boot" and (boot.uuid or "").lower() == GPT_BOOT_PARTUUID
    assert lvm_part.path == "/dev/vda2" and lvm_part.size == 400 * MiB
    assert "lvm" in lvm_part.flags and lvm_part.name == "lvm"
    pv = by_path(layout.pvs, "device")["/dev/vda2"]
    assert pv.uuid == PV_UUID and pv.vg == "vggpt"
    vg = by_path(layout.vgs, "name")["vggpt"]
    assert vg.extent_size == 4 * MiB and vg.pvs == ["/dev/vda2"]
    for name, size in (("root", 100), ("data", 120), ("swap", 32)):
        lv = layout.lv(f"vggpt/{name}")
        assert lv is not None, name
        assert (lv.size, lv.segtype, lv.devices) == (size * MiB, "linear", ["/dev/vda2"])
        assert lv.path == f"/dev/mapper/vggpt-{name}"
    fss = by_path(layout.filesystems, "device")
    root, data, swap = (fss[f"/dev/mapper/vggpt-{n}"] for n in ("root", "data", "swap"))
    assert (root.fstype, root.uuid, root.label) == ("ext4", fs_uuid(2), "gptroot")
    assert root.ext is not None and root.ext.block_size and "has_journal" in root.ext.features
    assert (data.fstype, data.uuid, data.label) == ("xfs", fs_uuid(3), "gptdata")
    assert data.xfs is not None and data.xfs.block_size == 4096
    assert (swap.fstype, swap.uuid, swap.label) == ("swap", fs_uuid(4), "gptswap")
    assert fss["/dev/vda1"].uuid == fs_uuid(1)
    mounts = {m.mountpoint: m for m in layout.mounts if m.fstype != "swap"}
    assert mounts["/srv/gpt/root"].device == "/dev/mapper/vggpt-root"
    assert mounts["/srv/gpt/data"].fstype == "xfs"
    assert mounts["/srv/gpt/boot"].device == "/dev/vda1"
    swaps = [m for m in layout.mounts if m.fstype == "swap"]
    assert [(s.device, s.mounted) for s in swaps] == [("/dev/mapper/vggpt-swap", True)]


def check_mbr_logical(layout: Layout) -> None:
    for disk_path, label_id in (("/dev/vdb", "0x5eed0001"), ("/dev/vdc", "0x5eed0002")):
        disk = layout.disk(disk_path)
        assert disk is not None, f"{disk_path} (RAID member) missing"
        assert (disk.table, disk.table_id) == ("dos", label_id)
        # A kept disk keeps its whole table: vdc1 and vdc6 hold nothing mounted.
        rows = [(p.number, p.kind, p.type, p.size) for p in disk.partitions]
        assert rows == [
            (1, "primary", "ef", 64 * MiB),
            (2, "extended", "5", 400 * MiB),
            (5, "logical", "fd", 300 * MiB),
            (6, "logical", "83", 64 * MiB),
        ]
        parts = by_path(disk.partitions)
        assert parts[f"{disk_path}1"].start == 2048 * 512
        # Logical partitions sit inside the extended one, each after its EBR.
        ext, p5, p6 = parts[f"{disk_path}2"], parts[f"{disk_path}5"], parts[f"{disk_path}6"]
        assert ext.start < p5.start < p6.start < ext.start + ext.size
        assert "raid" in p5.flags
    mounts = {m.mountpoint: m.device for m in layout.mounts}
    assert mounts["/srv/mbr/esp"] == "/dev/vdb1" and mounts["/srv/mbr/l6"] == "/dev/vdb6"
    assert by_path(layout.filesystems, "device")["/dev/vdb6"].uuid == fs_uuid(7)
    # vdc6 holds nothing at all: kept with its table, and said to be unmounted.
    vdc6 = by_path(layout.partitions())["/dev/vdc6"]
    assert vdc6.unmounted and layout.filesystem("/dev/vdc6") is None


def check_esp_copy(layout: Layout) -> None:
    """The mirrored-boot machine's second ESP: FAT on the other disk's first partition, not
    mounted, is in the layout with its UUID, so recovery can make both disks bootable."""
    assert [p.path for p in layout.esps()] == ["/dev/vdb1", "/dev/vdc1"]
    fss = by_path(layout.filesystems, "device")
    for device, volid in zip(("/dev/vdb1", "/dev/vdc1"), ESP_VOLIDS, strict=True):
        fs = fss[device]
        assert (fs.fstype, fs.uuid, fs.label) == ("vfat", f"{volid[:4]}-{volid[4:]}", "ESP")
        assert fs.fat_size == 32
    assert not fss["/dev/vdb1"].unmounted and fss["/dev/vdc1"].unmounted
    assert by_path(layout.partitions())["/dev/vdc1"].unmounted


def check_autoexclude(layout: Layout) -> None:
    """The job disk mounted below /mnt (AUTOEXCLUDE_PATH) is left out, and listed as such."""
    assert layout.disk("/dev/vde") is None
    assert layout.mount("/mnt/job") is None and layout.filesystem("/dev/vde1") is None
    excluded = {e.id: e.reason for e in layout.excluded}
    assert "AUTOEXCLUDE_PATH" in excluded["mount:/mnt/job"], excluded
    assert "mount:/mnt/job" in excluded["fs:/dev/vde1"], excluded
    assert excluded["disk:/dev/vde"] == "nothing kept remains on it", excluded
    assert layout.options.autoexclude == ["/media", "/run", "/mnt", "/tmp"]


def check_raid1_luks2_lvm(layout: Layout) -> None:
    (md,) = layout.mds
    assert (md.path, md.level, md.metadata, md.uuid) == ("/dev/md0", "raid1", "1.2", MD_UUID)
    assert md.members == ["/dev/vdb5", "/dev/vdc5"] and md.raid_devices == 2
    assert md.spares == [] and md.bitmap == "internal"
    assert md.name is not None and md.name.split(":")[-1] == "secure"
    # 300 MiB members less the 1.2 superblock area and the bitmap.
    assert md.size is not None and 280 * MiB < md.size < 300 * MiB
    (luks,) = layout.luks
    assert (luks.name, luks.path, luks.device) == ("secure", "/dev/mapper/secure", "/dev/md0")
    assert (luks.version, luks.uuid, luks.label) == (2, LUKS_UUID, "seclabel")
    assert (luks.cipher, luks.key_size, luks.pbkdf) == ("aes-xts-plain64", 512, "pbkdf2")
    assert luks.sector_size in (512, 4096) and luks.data_offset == 16 * MiB
    pv = by_path(layout.pvs, "device")["/dev/mapper/secure"]
    assert pv.vg == "vgsec"
    assert by_path(layout.vgs, "name")["vgsec"].pvs == ["/dev/mapper/secure"]
    home = layout.lv("vgsec/home")
    assert home is not None and home.size == 64 * MiB
    assert home.devices == ["/dev/mapper/secure"]
    mount = layout.mount("/srv/sec/home")
    assert mount is not None and mount.device == "/dev/mapper/vgsec-home"


def check_nvme_thin_striped_raid1(layout: Layout) -> None:
    nvme = layout.disk("/dev/nvme0n1")
    assert nvme is not None and nvme.table == "gpt" and nvme.serial == "mkmedia-nvme0"
    assert [p.path for p in nvme.partitions] == ["/dev/nvme0n1p1", "/dev/nvme0n1p2"]
    assert [p.number for p in nvme.partitions] == [1, 2]
    vdd = layout.disk("/dev/vdd")
    assert vdd is not None and vdd.table is None and vdd.partitions == []
    # udev's lvm-pv-uuid-* link names the PV on it, not the disk.
    assert vdd.by_id == ["/dev/disk/by-id/virtio-mkmedia-disk3"]
    vg = by_path(layout.vgs, "name")["vgthin"]
    assert sorted(vg.pvs) == ["/dev/nvme0n1p2", "/dev/vdd"]
    pool = layout.lv("vgthin/pool")
    assert pool is not None and pool.segtype == "thin-pool" and pool.size == 96 * MiB
    assert pool.chunk_size == 64 * 1024 and pool.metadata_size == 4 * MiB
    assert pool.devices == ["/dev/vdd"]  # its hidden data and metadata LVs' PV
    for name, size in (("thin1", 200), ("thin2", 100)):
        lv = layout.lv(f"vgthin/{name}")
        assert lv is not None and (lv.segtype, lv.pool, lv.size) == ("thin", "pool", size * MiB)
    stripe = layout.lv("vgthin/stripe")
    assert stripe is not None and stripe.segtype == "striped"
    assert (stripe.stripes, stripe.stripe_size, stripe.size) == (2, 64 * 1024, 32 * MiB)
    assert sorted(stripe.devices) == ["/dev/nvme0n1p2", "/dev/vdd"]
    mirror = layout.lv("vgthin/mirror")
    assert mirror is not None and (mirror.segtype, mirror.mirrors) == ("raid1", 2)
    assert mirror.size == 16 * MiB and mirror.region_size == 2 * MiB
    assert sorted(mirror.devices) == ["/dev/nvme0n1p2", "/dev/vdd"]  # one image on each
    # Hidden sub-LVs ([pool_tdata], [mirror_rimage_0], ...) are not LVs to recreate.
    assert not [lv for lv in layout.lvs if "_t" in lv.name or "_r" in lv.name]
    fss = by_path(layout.filesystems, "device")
    assert fss["/dev/mapper/vgthin-thin1"].uuid == fs_uuid(8)
    assert fss["/dev/mapper/vgthin-thin2"].fstype == "xfs"


def check_btrfs(layout: Layout) -> None:
    fs = by_path(layout.filesystems, "device")["/dev/nvme0n1p1"]
    assert (fs.fstype, fs.uuid, fs.label) == ("btrfs", BTRFS_UUID, "btr")
    assert fs.btrfs is not None and fs.btrfs.devices == ["/dev/nvme0n1p1"]
    subs = {s.path: s for s in fs.btrfs.subvolumes}
    assert sorted(subs) == ["@", "@/nested", "@home"]
    # Ids count up from 256 in creation order; nested sits in @.
    assert [subs[p].id for p in ("@", "@home", "@/nested")] == [256, 257, 258]
    assert subs["@/nested"].parent == 256 and subs["@home"].parent == 5
    assert fs.btrfs.default_subvolume == 256 and fs.btrfs.default_subvolume_path == "@"
    assert fs.btrfs.data_profile == "single"
    default_mount = layout.mount("/srv/btr")
    home_mount = layout.mount("/srv/btr-home")
    assert default_mount is not None and home_mount is not None
    assert default_mount.fsroot == "/@" and home_mount.fsroot == "/@home"


# The checks are plain functions: tests/unit/test_layout_guest_replay.py applies them to a
# capture replayed from the tool outputs recorded in such a guest (tests/data/layout/guest).
CHECKS = {
    "gpt_lvm": check_gpt_lvm,
    "mbr_logical": check_mbr_logical,
    "raid1_luks2_lvm": check_raid1_luks2_lvm,
    "nvme_thin_striped_raid1": check_nvme_thin_striped_raid1,
    "btrfs": check_btrfs,
    "esp_copy": check_esp_copy,
    "autoexclude": check_autoexclude,
}


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
