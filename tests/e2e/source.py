"""Real Debian 12 source machines for the end-to-end tests, built once and cached.

A source machine is not a file tree pretending to be one: a debootstrapped Debian 12 with its
own kernel, initramfs and GRUB, installed onto virtual disks from inside a QEMU guest (the
host has no device-mapper), with a job service that runs what a test hands it on a 9p share.

Build, each piece cached under CACHE keyed by what went into it:
1. the base tree: `debootstrap` from the Debian mirror this machine's apt uses, plus the job
   service, packed as a zstd cpio that boots as an initramfs;
2. per machine kind (`Spec`): its initramfs, made on the host in a chroot of a copy of the tree
   with the machine's /etc files (mkinitramfs inside a TCG guest takes more than 15 minutes),
   then one provisioning boot of the tree-as-initramfs that partitions the disks, builds the
   storage stack, copies the system, installs GRUB, fills the test data and powers off.
The result is a set of raw disk images; tests boot qcow2 overlays of them and never change them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mkmedia.qemu import Guest, Machine
from rescue_runtime.run import run
from tests.cachelock import build_once

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("MKMEDIA_TEST_CACHE", "/var/tmp/mkmedia-test-cache"))
SUITE = "bookworm"
PACKAGES = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "initramfs-tools",
    "lvm2",
    "thin-provisioning-tools",
    "mdadm",
    "cryptsetup",
    "cryptsetup-initramfs",
    "btrfs-progs",
    "xfsprogs",
    "e2fsprogs",
    "dosfstools",
    "acl",
    "attr",
    "libcap2-bin",
    "zstd",
    "python3",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub2-common",
    "efibootmgr",
    "parted",
    "gdisk",
    "fdisk",
    "iproute2",
    "procps",
    "isolinux",
    "syslinux-common",
    "mtools",
    "isc-dhcp-client",
    "less",
)
# Software emulation: generous limits, not timing assertions.
PROVISION_DEADLINE = 2400.0
BUILD_VERSION = 1
JOB_TAG = "job"

# The job service: at boot, a 9p share tagged "job" (the test's directory) is mounted on
# /run/job; its run.sh runs with output to run.log there, the markers go to the serial
# console, and the machine powers off when the job asks for it. Without the share it does
# nothing, so the machine boots like any other.
JOB_SCRIPT = """#!/bin/sh
modprobe -q 9pnet_virtio 2>/dev/null
mkdir -p /run/job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /run/job 2>/dev/null || exit 0
echo "MKMEDIA-JOB-START $(hostname)" > /dev/ttyS0
rc=127
if [ -x /run/job/run.sh ]; then
    /run/job/run.sh > /run/job/run.log 2>&1
    rc=$?
fi
echo "MKMEDIA-JOB-END rc=$rc" > /dev/ttyS0
sync
if [ -e /run/job/poweroff ]; then
    umount /run/job
    systemctl --no-block poweroff
fi
"""
JOB_UNIT = """[Unit]
Description=mkmedia test job from the 9p share
After=local-fs.target systemd-udev-settle.service
Wants=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mkmedia-test-job
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"""
GRUB_DEFAULTS = """GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
"""


@dataclass(frozen=True)
class Spec:
    """One kind of source machine: its firmware, disks and storage stack."""

    name: str
    firmware: str  # bios | uefi
    disks_mib: tuple[int, ...]
    # Shell run in the provisioning guest: partition, build the stack, make the file systems
    # and mount the target tree at /target (with everything below it). It sets GRUB_TARGETS
    # (the grub-install arguments, one run per line).
    storage: str
    # Shell run after the copy, to write /target/etc/fstab and friends from the live devices.
    etc: str
    # Shell that takes the stack down after unmounting.
    teardown: str
    data_dirs: tuple[str, ...] = ("/srv/testdata",)
    # Shell run after GRUB is installed, the target still mounted (e.g. copy a mirrored ESP).
    after_grub: str = ""
    # Host-side /etc files written into the initramfs chroot (name -> content).
    initramfs_etc: dict[str, str] = field(default_factory=dict)


# The source machines' network card (QEMU's default MAC, given explicitly so that a
# replacement machine's card can differ).
SOURCE_MAC = "52:54:00:12:34:56"

BIOS_LVM = Spec(
    name="bios-lvm",
    firmware="bios",
    disks_mib=(6144,),
    storage="""
printf 'label: dos\\n,256MiB,83,*\\n,,8e\\n' | sfdisk -q /dev/vda
udevadm settle
mkfs.ext4 -q -L boot /dev/vda1
pvcreate -q /dev/vda2
vgcreate -q vgsys /dev/vda2
lvcreate -q -y -n root -L 2560M vgsys
lvcreate -q -y -n data -L 768M vgsys
lvcreate -q -y -n swap -L 256M vgsys
mkfs.ext4 -q -L root /dev/vgsys/root
mkfs.xfs -q -L data /dev/vgsys/data
mkswap -L swap /dev/vgsys/swap >/dev/null
mount /dev/vgsys/root /target
mkdir -p /target/boot /target/data
mount /dev/vda1 /target/boot
mount /dev/vgsys/data /target/data
GRUB_TARGETS="--target=i386-pc /dev/vda"
""",
    etc="""
uuid() { blkid -o value -s UUID "$1"; }
cat > /target/etc/fstab <<EOF
UUID=$(uuid /dev/vgsys/root) / ext4 errors=remount-ro 0 1
UUID=$(uuid /dev/vda1) /boot ext4 defaults 0 2
UUID=$(uuid /dev/vgsys/data) /data xfs defaults 0 2
UUID=$(uuid /dev/vgsys/swap) none swap sw 0 0
EOF
# The card is named by its MAC, as many servers pin theirs: a migration onto another card
# must rewrite the MAC here, or the recovered machine has no lan0.
mkdir -p /target/etc/systemd/network
cat > /target/etc/systemd/network/10-lan0.link <<EOF
[Match]
MACAddress={mac}
[Link]
Name=lan0
EOF
""".replace("{mac}", SOURCE_MAC),
    teardown="vgchange -q -an vgsys",
    data_dirs=("/srv/testdata", "/data/testdata"),
    initramfs_etc={"etc/fstab": "/dev/mapper/vgsys-root / ext4 errors=remount-ro 0 1\n"},
)

SETTLE_PARTITIONS = """
# sgdisk's own re-read can meet udev holding the disk (EBUSY): re-read until the nodes exist.
settle_partitions() {
    for _ in $(seq 1 40); do
        udevadm settle
        for disk in /dev/vd?; do blockdev --rereadpt "$disk" 2>/dev/null || true; done
        udevadm settle
        missing=0
        for part in "$@"; do [ -b "$part" ] || missing=1; done
        [ "$missing" = 0 ] && return 0
        sleep 0.5
    done
    echo "partitions $* did not appear"
    return 1
}
"""

# UEFI, a mirrored machine: both disks carry an ESP (the second a copy, not mounted), a RAID1
# for /boot and a RAID1 holding LUKS2 (key file named in crypttab, unlocked by the initramfs)
# with LVM inside. UUIDs are fixed so the host-side initramfs knows them.
MD_BOOT_UUID = "5eed0001:00000000:00000000:00000001"
MD_CRYPT_UUID = "5eed0001:00000000:00000000:00000002"
LUKS_UUID = "5eed0001-0000-4000-8000-000000000003"
LUKS_KEY = "mkmedia-test-key-file-not-a-secret"
CRYPTTAB = f"cryptpv UUID={LUKS_UUID} /etc/keys/cryptpv.key luks,discard,initramfs\n"
MDADM_CONF = (
    "HOMEHOST <system>\n"
    f"ARRAY /dev/md/boot metadata=1.2 UUID={MD_BOOT_UUID} name=srcmachine:boot\n"
    f"ARRAY /dev/md/crypt metadata=1.2 UUID={MD_CRYPT_UUID} name=srcmachine:crypt\n"
)
CRYPT_ETC = {
    "etc/crypttab": CRYPTTAB,
    "etc/keys/cryptpv.key": LUKS_KEY,
    "etc/cryptsetup-initramfs/conf-hook": 'KEYFILE_PATTERN="/etc/keys/*.key"\n',
    "etc/initramfs-tools/conf.d/umask": "UMASK=0077\n",
    "etc/mdadm/mdadm.conf": MDADM_CONF,
}


def _write_files(files: dict[str, str]) -> str:
    """Shell that writes these files below /target, each from base64 (no quoting pitfalls)."""
    import base64

    lines = []
    for name, text in files.items():
        encoded = base64.b64encode(text.encode()).decode()
        lines.append(f'mkdir -p "$(dirname /target/{name})"')
        lines.append(f"echo {encoded} | base64 -d > /target/{name}")
    lines.append("chmod 0700 /target/etc/keys && chmod 0400 /target/etc/keys/*")
    return "\n".join(lines) + "\n"


UEFI_RAID_LUKS = Spec(
    name="uefi-raid-luks",
    firmware="uefi",
    disks_mib=(4096, 4096),
    storage=SETTLE_PARTITIONS
    + f"""
for d in vda vdb; do
    sgdisk -o -n 1:1MiB:+100MiB -t 1:ef00 -c 1:esp -n 2:0:+384MiB -t 2:fd00 -c 2:boot \\
        -n 3:0:0 -t 3:fd00 -c 3:crypt /dev/$d >/dev/null
done
settle_partitions /dev/vda1 /dev/vda2 /dev/vda3 /dev/vdb1 /dev/vdb2 /dev/vdb3
mdadm --create /dev/md/boot --run --assume-clean --level=1 --raid-devices=2 --metadata=1.2 \\
    --homehost=srcmachine --name=boot --uuid={MD_BOOT_UUID} /dev/vda2 /dev/vdb2
mdadm --create /dev/md/crypt --run --assume-clean --level=1 --raid-devices=2 --metadata=1.2 \\
    --homehost=srcmachine --name=crypt --uuid={MD_CRYPT_UUID} /dev/vda3 /dev/vdb3
udevadm settle
printf %s '{LUKS_KEY}' > /run/luks.key
cryptsetup luksFormat -q --type luks2 --uuid {LUKS_UUID} --pbkdf pbkdf2 \\
    --pbkdf-force-iterations 1000 --key-file /run/luks.key /dev/md/crypt
cryptsetup open --key-file /run/luks.key /dev/md/crypt cryptpv
pvcreate -q /dev/mapper/cryptpv
vgcreate -q vgcrypt /dev/mapper/cryptpv
lvcreate -q -y -n root -L 2300M vgcrypt
lvcreate -q -y -n swap -L 192M vgcrypt
mkfs.vfat -F 32 -n ESP /dev/vda1 >/dev/null
mkfs.vfat -F 32 -n ESP /dev/vdb1 >/dev/null
mkfs.ext4 -q -L boot /dev/md/boot
mkfs.ext4 -q -L root /dev/vgcrypt/root
mkswap -L swap /dev/vgcrypt/swap >/dev/null
mount /dev/vgcrypt/root /target
mkdir -p /target/boot
mount /dev/md/boot /target/boot
mkdir -p /target/boot/efi
mount /dev/vda1 /target/boot/efi
GRUB_TARGETS="--target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram"
""",
    etc="""
uuid() { blkid -o value -s UUID "$1"; }
{
    echo "UUID=$(uuid /dev/vgcrypt/root) / ext4 errors=remount-ro 0 1"
    echo "UUID=$(uuid /dev/md/boot) /boot ext4 defaults 0 2"
    echo "UUID=$(uuid /dev/vda1) /boot/efi vfat umask=0077 0 1"
    echo "UUID=$(uuid /dev/vgcrypt/swap) none swap sw 0 0"
} > /target/etc/fstab
"""
    + _write_files(CRYPT_ETC),
    after_grub="""
mkdir -p /run/esp2
mount /dev/vdb1 /run/esp2
cp -a /target/boot/efi/. /run/esp2/
umount /run/esp2
""",
    teardown="vgchange -q -an vgcrypt\ncryptsetup close cryptpv\nmdadm --stop --scan",
    initramfs_etc={
        "etc/fstab": "/dev/mapper/vgcrypt-root / ext4 errors=remount-ro 0 1\n",
        **CRYPT_ETC,
    },
)

# UEFI with btrfs: subvolumes @ (the default, mounted as /), @home, and @/srv/nested, a
# subvolume nested inside @ that is not mounted on its own (one-file-system archivers skip it).
BTRFS = Spec(
    name="uefi-btrfs",
    firmware="uefi",
    disks_mib=(4096,),
    storage=SETTLE_PARTITIONS
    + """
sgdisk -o -n 1:1MiB:+100MiB -t 1:ef00 -c 1:esp -n 2:0:0 -t 2:8300 -c 2:root /dev/vda >/dev/null
settle_partitions /dev/vda1 /dev/vda2
mkfs.vfat -F 32 -n ESP /dev/vda1 >/dev/null
mkfs.btrfs -q -L root /dev/vda2
mkdir -p /run/top
mount /dev/vda2 /run/top
btrfs -q subvolume create /run/top/@
btrfs -q subvolume create /run/top/@home
mkdir -p /run/top/@/srv
btrfs -q subvolume create /run/top/@/srv/nested
btrfs -q subvolume set-default /run/top/@
umount /run/top
mount /dev/vda2 /target
mkdir -p /target/home /target/boot/efi
mount -o subvol=@home /dev/vda2 /target/home
mount /dev/vda1 /target/boot/efi
GRUB_TARGETS="--target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram"
""",
    etc="""
uuid() { blkid -o value -s UUID "$1"; }
{
    echo "UUID=$(uuid /dev/vda2) / btrfs defaults 0 0"
    echo "UUID=$(uuid /dev/vda2) /home btrfs subvol=@home 0 0"
    echo "UUID=$(uuid /dev/vda1) /boot/efi vfat umask=0077 0 1"
} > /target/etc/fstab
""",
    teardown="true",
    data_dirs=("/srv/testdata", "/home/testdata", "/srv/nested/testdata"),
    initramfs_etc={"etc/fstab": "/dev/vda2 / btrfs defaults 0 0\n"},
)

SPECS: dict[str, Spec] = {s.name: s for s in (BIOS_LVM, UEFI_RAID_LUKS, BTRFS)}


@dataclass(frozen=True)
class SourceMachine:
    """A built source machine: raw disk images (never written by tests) and what it is."""

    spec: Spec
    directory: Path
    kernel_version: str

    @property
    def disks(self) -> list[Path]:
        return [self.directory / f"disk{i}.img" for i in range(len(self.spec.disks_mib))]

    def overlays(self, into: Path) -> list[Path]:
        """qcow2 overlays of the disks under `into`, for one test to boot and change."""
        into.mkdir(parents=True, exist_ok=True)
        result = []
        for disk in self.disks:
            overlay = into / f"{disk.stem}.qcow2"
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(disk),
                 str(overlay)])  # fmt: skip
            result.append(overlay)
        return result


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first (from /proc/self/mountinfo)."""
    base = os.path.realpath(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == base or target.startswith(base + "/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rmtree that first unmounts what a killed build left mounted below `path`: removing a
    tree with the host's /dev bound into it would delete the host's device nodes."""
    for target in mounts_below(path):
        subprocess.run(["umount", "-l", target], check=False)
    if mounts_below(path):
        raise RuntimeError(f"{path} still has mounts below it; not removing it")
    shutil.rmtree(path, ignore_errors=True)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (never a host written into the code)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for stanza in sources.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#"
            )
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "URIs" in fields:
                return fields["URIs"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    raise RuntimeError("no Debian mirror for bookworm in /etc/apt: cannot debootstrap")


def _publish(tmp: Path, final: Path) -> Path:
    """Atomically make a finished build visible; a concurrent builder's result wins."""
    try:
        tmp.rename(final)
    except OSError:
        remove_tree(tmp)
    return final


def base_tree() -> Path:
    """The customised debootstrap tree (root/) and its initramfs form (tree.cpio.zst)."""
    key = _digest(SUITE, PACKAGES, debian_mirror(), JOB_SCRIPT, JOB_UNIT, GRUB_DEFAULTS, 2)
    final = CACHE / f"tree-{key[:16]}"
    done = final / "tree.cpio.zst"
    return build_once(
        CACHE, final.name, lambda: final if done.exists() else None, lambda: _build_tree(final)
    )


def _build_tree(final: Path) -> Path:
    tmp = CACHE / f".{final.name}.{os.getpid()}"
    remove_tree(tmp)
    root = tmp / "root"
    root.mkdir(parents=True)
    debs = CACHE / "debs"
    debs.mkdir(exist_ok=True)
    run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
         f"--include={','.join(PACKAGES)}", SUITE, str(root), debian_mirror()])  # fmt: skip
    _customise(root)
    _pack_cpio(root, tmp / "tree.cpio.zst")
    return _publish(tmp, final)


def _customise(root: Path) -> None:
    (root / "etc/hostname").write_text("srcmachine\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 srcmachine\n")
    job = root / "usr/local/sbin/mkmedia-test-job"
    job.write_text(JOB_SCRIPT)
    job.chmod(0o755)
    (root / "etc/systemd/system/mkmedia-test-job.service").write_text(JOB_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "mkmedia-test-job.service").symlink_to("/etc/systemd/system/mkmedia-test-job.service")
    (root / "etc/default/grub").write_text(GRUB_DEFAULTS)
    # Root logs in on the serial console without a password (a test machine; never reached
    # by a network).
    run(["chroot", str(root), "passwd", "-d", "root"])
    (root / "etc/initramfs-tools/conf.d/mkmedia-test").write_text("MODULES=most\nCOMPRESS=zstd\n")
    for junk in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)


def _pack_cpio(root: Path, output: Path) -> None:
    """newc cpio of the tree, zstd-compressed, with the entries sorted (GNU cpio, zstd)."""
    names = subprocess.run(
        ["find", ".", "-mindepth", "1", "-print0"], cwd=root, check=True, capture_output=True
    ).stdout.split(b"\0")
    listing = b"\0".join(sorted(n for n in names if n)) + b"\0"
    partial = output.with_name(output.name + ".partial")
    with open(partial, "wb") as out:
        cpio = subprocess.Popen(
            ["cpio", "--null", "-o", "-H", "newc", "--quiet"],
            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        zstd = subprocess.Popen(["zstd", "-q", "-T0", "-6", "-c"], stdin=cpio.stdout, stdout=out)
        assert cpio.stdin is not None and cpio.stdout is not None
        cpio.stdout.close()
        cpio.stdin.write(listing)
        cpio.stdin.close()
        if cpio.wait() != 0 or zstd.wait() != 0:
            raise RuntimeError(f"packing {root} as a cpio failed")
    partial.rename(output)


def kernel_version(root: Path) -> str:
    versions = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if len(versions) != 1:
        raise RuntimeError(f"expected one kernel in {root}/boot, found {versions}")
    return versions[0]


def build_initramfs(base: Path, spec: Spec, output: Path) -> None:
    """mkinitramfs for the spec, on the host, in a chroot of a copy of the base tree."""
    work = output.parent / "initramfs-root"
    remove_tree(work)
    run(["cp", "-a", "--reflink=auto", str(base / "root"), str(work)])
    for name, text in spec.initramfs_etc.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    version = kernel_version(work)
    mounted: list[Path] = []
    try:
        for what in ("proc", "sys", "dev"):
            target = work / what
            run(["mount", "--bind", f"/{what}", str(target)])
            mounted.append(target)
        run(["chroot", str(work), "mkinitramfs", "-o", f"/boot/initrd.img-{version}", version])
    finally:
        for target in reversed(mounted):
            run(["umount", "-l", str(target)])
    shutil.copyfile(work / "boot" / f"initrd.img-{version}", output)
    remove_tree(work)


def _provision_script(spec: Spec, version: str) -> str:
    excludes = " ".join(f"--exclude=./{p}" for p in ("provision", "init", "target"))
    data = "\n".join(f"sh /provision/make-testdata.sh /target{d} 400 8" for d in spec.data_dirs)
    return f"""#!/bin/bash
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
exec > /dev/ttyS0 2>&1
trap 'echo "PROVISION-FAILED at line $LINENO"; echo o > /proc/sysrq-trigger' ERR
set -eE
echo PROVISION-START
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle
mkdir -p /target
{spec.storage}
tar -C / --one-file-system {excludes} --xattrs --xattrs-include='*' --acls -cf - . \\
    | tar -C /target --xattrs --xattrs-include='*' --acls -xpf -
{spec.etc}
cp /provision/initrd.img /target/boot/initrd.img-{version}
{data}
for d in dev proc sys run; do mount --bind /$d /target/$d; done
while read -r args; do
    [ -n "$args" ] && chroot /target grub-install $args
done <<EOF
$GRUB_TARGETS
EOF
chroot /target grub-mkconfig -o /boot/grub/grub.cfg 2>&1 | tail -3
{spec.after_grub}
umount -R /target
{spec.teardown}
sync
echo PROVISION-OK
echo o > /proc/sysrq-trigger
sleep 60
"""


def _small_cpio(files: dict[str, tuple[bytes, int]], output: Path, staging: Path) -> None:
    """An uncompressed newc cpio of a few files (name -> (content, mode))."""
    shutil.rmtree(staging, ignore_errors=True)
    for name, (content, mode) in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    names = sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))
    with open(output, "wb") as out:
        subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=staging,
            input="\n".join(names).encode(), stdout=out, check=True,
        )  # fmt: skip
    shutil.rmtree(staging)


def source_machine(name: str, *, log_dir: Path | None = None) -> SourceMachine:
    """The source machine of this kind, built now if the cache does not have it."""
    spec = SPECS[name]
    base = base_tree()
    version = kernel_version(base / "root")
    # Keyed by what goes into the disks (not by this file's text, so editing a test helper
    # here does not rebuild them); bump BUILD_VERSION when the provisioning changes otherwise.
    key = _digest(
        BUILD_VERSION, base.name, spec, _provision_script(spec, version),
        (HERE / "make-testdata.sh").read_text(),
    )  # fmt: skip
    final = CACHE / f"source-{spec.name}-{key[:16]}"

    def cached() -> SourceMachine | None:
        done = (final / "machine.json").exists()
        return SourceMachine(spec, final, version) if done else None

    return build_once(
        CACHE, final.name, cached, lambda: _build_source(spec, base, version, final, log_dir)
    )


def _build_source(
    spec: Spec, base: Path, version: str, final: Path, log_dir: Path | None
) -> SourceMachine:
    tmp = CACHE / f".{final.name}.{os.getpid()}"
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    build_initramfs(base, spec, tmp / "initrd.img")
    small = tmp / "provision.cpio"
    _small_cpio(
        {
            "init": (_provision_script(spec, version).encode(), 0o755),
            "provision/initrd.img": ((tmp / "initrd.img").read_bytes(), 0o644),
            "provision/make-testdata.sh": ((HERE / "make-testdata.sh").read_bytes(), 0o755),
        },
        small,
        tmp / "staging",
    )
    initrd = tmp / "boot-initrd"
    with open(initrd, "wb") as out:
        out.write(small.read_bytes())
        out.write((base / "tree.cpio.zst").read_bytes())
    disks = []
    for i, size in enumerate(spec.disks_mib):
        disk = tmp / f"disk{i}.img"
        with open(disk, "wb") as handle:
            handle.truncate(size << 20)
        disks.append(disk)
    machine = Machine(
        firmware="bios",
        memory_mib=3072,
        kernel=base / "root" / "boot" / f"vmlinuz-{version}",
        initrd=initrd,
        append="console=ttyS0,115200 quiet",
        boot_disk=None,
        disks=disks,
        network=False,
    )
    console = (log_dir or tmp) / f"provision-{spec.name}.log"
    with Guest(machine, deadline=PROVISION_DEADLINE, console_log=console, name="provision") as g:
        g.expect(r"PROVISION-(OK|FAILED[^\n]*)", timeout=PROVISION_DEADLINE)
        verdict = g.output
        g.wait_exit(120)
    if "PROVISION-OK" not in verdict:
        raise RuntimeError(f"provisioning {spec.name} failed; console log: {console}")
    for leftover in (small, initrd, tmp / "initrd.img"):
        leftover.unlink()
    (tmp / "machine.json").write_text(
        json.dumps({"spec": spec.name, "kernel": version, "firmware": spec.firmware}) + "\n"
    )
    return SourceMachine(spec, _publish(tmp, final), version)


# The controllers a machine's disks can sit on: virtio (as at provisioning) or NVMe (the
# replacement hardware of a migration).
INTERFACES = ("virtio", "nvme")


def on_controller(disks: Sequence[Path], interface: str) -> tuple[list[Path], list[Path]]:
    """(virtio disks, NVMe disks) of a Machine with `disks` on `interface`; each controller
    gives its disks fixed serials (mkmedia-disk0, mkmedia-nvme0, ...)."""
    if interface not in INTERFACES:
        raise ValueError(f"disk interface {interface!r} is not one of {INTERFACES}")
    return (list(disks), []) if interface == "virtio" else ([], list(disks))


def boot_source(
    machine: SourceMachine,
    disks: Sequence[Path],
    job_dir: Path,
    *,
    console_log: Path,
    deadline: float = 1200.0,
    memory_mib: int = 1536,
    cpus: int = 1,
    vars_file: Path | None = None,
    interface: str = "virtio",
    mac: str = SOURCE_MAC,
) -> Guest:
    """A Guest booting the source machine's (overlay) disks with `job_dir` as its job share;
    `vars_file`: the UEFI variable store to keep (a recovered machine's NVRAM); `interface`:
    the controller the disks are on; `mac`: its network card's."""
    virtio, nvme = on_controller(disks, interface)
    qemu = Machine(
        firmware=machine.spec.firmware,
        memory_mib=memory_mib,
        cpus=cpus,
        vars_file=vars_file,
        disks=virtio,
        nvme_disks=nvme,
        boot_order="c",
        network=True,
        mac=mac,
        extra=["-virtfs", f"local,path={job_dir},mount_tag={JOB_TAG},security_model=none"],
    )
    return Guest(qemu, deadline=deadline, console_log=console_log, name=machine.spec.name)
