"""Where the backup is inside the rescue system, and which disks it and the rescue medium sit on.

- iso:///NAME: the backup is inside the rescue ISO. The medium (a CD, or a disk holding the
  hybrid image: a USB stick, a virtual disk) is the one that carries this build's marker
  /mkmedia/id-<hex> (mkmedia/emit/iso.py; rescue.json's `medium_id`); it is mounted
  read-only for the time the backup is used, and the backup is <mount>/NAME.
- file:///DIR: DIR/<short hostname>, on a share the operator mounted.
- sshfs://, nfs://, cifs://: the share, mounted through rescue_runtime/backup/mount.py for the
  time it is used; usb://: the data partition of a stick made by `mkmedia format` (found by its
  label MKMEDIA-000), mounted the same way, the backup under <partition>/backup/<hostname>.
- tape://: the tape carrying this host's label (backup/tapemedium.py), streamed from it.

The devices a located backup reports are whole disks (partitions and device-mapper/MD devices
resolved to the disks below them through /sys/class/block): recover must never write them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rescue_runtime import rescueconf
from rescue_runtime.backup import usbstick
from rescue_runtime.backup.manifest import BackupError
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.run import run, which
from rescue_runtime.url import parse_url

log = logging.getLogger("mkmedia.medium")

# ISO 9660: the first volume descriptor sits at block 16 (2048-byte blocks): type byte, "CD001".
ISO9660_MAGIC = b"CD001"
ISO9660_MAGIC_OFFSET = 16 * 2048 + 1
MARKER_DIR = "mkmedia"
# What recover must load to read the medium: the CD driver and the file system (the
# controller's driver comes with the hardware's modaliases at boot).
MEDIUM_MODULES = ("sr_mod", "isofs")


def marker_path(medium_id: str) -> str:
    """The marker file, relative to the medium's root (the same name GRUB searches for)."""
    return f"{MARKER_DIR}/id-{medium_id.lower()}"


@dataclass
class LocatedBackup:
    directory: Path  # holds backup-manifest.json + backup.tar.zst
    # whole-disk device paths the backup and the rescue medium sit on: never a recover target
    devices: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class SysBlock:
    """The block devices as the kernel lists them (roots other than / for tests)."""

    sys_root: Path = Path("/sys")
    dev_root: Path = Path("/dev")
    proc_root: Path = Path("/proc")

    def _entry(self, name: str) -> Path:
        return self.sys_root / "class" / "block" / name

    def names(self) -> list[str]:
        try:
            return [p.name for p in (self.sys_root / "class" / "block").iterdir()]
        except FileNotFoundError:
            return []

    def device(self, name: str) -> str:
        return str(self.dev_root / name)

    def is_partition(self, name: str) -> bool:
        return (self._entry(name) / "partition").exists()

    def size(self, name: str) -> int:
        """512-byte sectors; 0 for an empty drive or an unreadable entry."""
        try:
            return int((self._entry(name) / "size").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def whole_disks(self, name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """The disks under `name`: a partition's disk, the members of a device-mapper or MD
        device (recursively), a loop device with the disks its backing file is on, or
        `name` itself."""
        if name in seen:
            return set()
        entry = self._entry(name)
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            backing = ""
        if backing:  # an ISO image attached with losetup: its file's disk holds it
            return {name} | self.holding(Path(backing))
        try:
            slaves = sorted(p.name for p in (entry / "slaves").iterdir())
        except OSError:
            slaves = []
        if slaves:
            disks: set[str] = set()
            for slave in slaves:
                disks |= self.whole_disks(slave, seen | {name})
            return disks
        if self.is_partition(name):
            return {Path(os.path.realpath(entry)).parent.name}
        return {name}

    def name_of(self, device: str) -> str | None:
        """The kernel name of a device node path (/dev/disk/by-label/X -> sdb1), if known."""
        real = os.path.realpath(device)
        name = Path(real).name
        return name if self._entry(name).exists() else None

    def holding(self, path: Path) -> set[str]:
        """The whole disks holding the file system `path` is on; empty for network and
        pseudo file systems."""
        mount = _mount_of(path, self.proc_root / "self" / "mountinfo")
        if mount is None:
            return set()
        numbers, source = mount
        by_number = self.sys_root / "dev" / "block" / numbers
        if by_number.exists():
            return self.whole_disks(Path(os.path.realpath(by_number)).name)
        # btrfs reports an anonymous device number; its mount source names the device
        name = self.name_of(source) if source.startswith("/") else None
        return self.whole_disks(name) if name else set()


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def _mount_of(path: Path, mountinfo: Path) -> tuple[str, str] | None:
    """(major:minor, source) of the mount that holds `path` (the longest mount point)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str, str] | None = None
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            after = line.split(" - ", 1)[1].split()
            source = _unescape(after[1]) if len(after) > 1 else ""
            best = (len(point), fields[2], source)
    return (best[1], best[2]) if best else None


def _by_device_order(blocks: SysBlock, name: str) -> tuple[int, int, str]:
    """Optical drives first, then whole disks, then partitions (a hybrid image's disk is
    mounted as a whole, its partitions only when the disk itself does not carry ISO 9660)."""
    return (0 if name.startswith("sr") else 1, int(blocks.is_partition(name)), name)


class Mounter(Protocol):
    def prepare(self) -> None: ...
    def mount(self, device: str, mountpoint: Path) -> bool: ...
    def umount(self, mountpoint: Path) -> None: ...


class Iso9660Mounter:
    """mount -t iso9660 -o ro, after loading the CD driver and the file system."""

    def prepare(self) -> None:
        if which("modprobe"):
            run(["modprobe", "-a", "-b", "-q", *MEDIUM_MODULES], check=False)
        if which("udevadm"):
            run(["udevadm", "settle", "--timeout=10"], check=False)

    def mount(self, device: str, mountpoint: Path) -> bool:
        if os.path.ismount(mountpoint):
            # a killed run's leftover (recover after a crash): this run mounts it afresh
            run(["umount", mountpoint], check=False)
        result = run(["mount", "-t", "iso9660", "-o", "ro", device, mountpoint], check=False)
        return result.ok

    def umount(self, mountpoint: Path) -> None:
        run(["umount", mountpoint], check=False)


@dataclass
class Scan:
    """What a search for the marker found: the carrying devices, and a word on each device
    looked at (for the message when none carries it)."""

    medium_id: str
    carriers: list[str] = field(default_factory=list)  # device paths, in search order
    mounted: tuple[str, Path] | None = None  # the first carrier, still mounted (keep=True)
    looked_at: list[str] = field(default_factory=list)

    def not_found(self, what: str) -> MissingError:
        searched = "; ".join(self.looked_at) or "no block device at all"
        return MissingError(
            f"No medium carries this rescue system's marker /{marker_path(self.medium_id)}, "
            f"so {what} cannot be read. Searched: {searched}.",
            hint="Insert the rescue CD/DVD (or attach the rescue ISO, or plug in the USB stick "
            "it was written to) and run the command again.",
        )


def _has_iso9660(device: str) -> str | None:
    """None when `device` starts with an ISO 9660 volume; otherwise why not."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return "no medium" if exc.errno == errno.ENOMEDIUM else (exc.strerror or str(exc)).lower()
    try:
        magic = os.pread(fd, len(ISO9660_MAGIC), ISO9660_MAGIC_OFFSET)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    finally:
        os.close(fd)
    return None if magic == ISO9660_MAGIC else "no ISO 9660 file system"


def scan_media(
    medium_id: str,
    work_dir: Path,
    *,
    blocks: SysBlock,
    mounter: Mounter,
    keep: bool,
) -> Scan:
    """Look for the marker on every ISO 9660 block device; with `keep`, the first carrier
    stays mounted (Scan.mounted) and the caller unmounts it."""
    scan = Scan(medium_id)
    mounter.prepare()
    matched_disks: set[str] = set()
    for name in sorted(blocks.names(), key=lambda n: _by_device_order(blocks, n)):
        if blocks.size(name) == 0:
            continue
        if blocks.whole_disks(name) & matched_disks:
            continue  # a partition of a disk already found (a hybrid image's)
        device = blocks.device(name)
        problem = _has_iso9660(device)
        if problem is not None:
            scan.looked_at.append(f"{device}: {problem}")
            continue
        mountpoint = work_dir / f"medium-{name}"
        mountpoint.mkdir(parents=True, exist_ok=True)
        if not mounter.mount(device, mountpoint):
            scan.looked_at.append(f"{device}: ISO 9660 but it cannot be mounted")
            with contextlib.suppress(OSError):
                mountpoint.rmdir()
            continue
        carries = (mountpoint / marker_path(medium_id)).is_file()
        if carries:
            scan.carriers.append(device)
            matched_disks |= blocks.whole_disks(name)
        else:
            scan.looked_at.append(f"{device}: another ISO 9660 medium")
        if carries and keep and scan.mounted is None:
            scan.mounted = (device, mountpoint)
            continue
        mounter.umount(mountpoint)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
    return scan


def medium_devices(scan: Scan, blocks: SysBlock) -> set[str]:
    disks: set[str] = set()
    for device in scan.carriers:
        disks |= blocks.whole_disks(Path(device).name)
    return {blocks.device(d) for d in disks}


@contextlib.contextmanager
def mounted_medium(
    medium_id: str,
    work_dir: Path,
    *,
    what: str,
    blocks: SysBlock | None = None,
    mounter: Mounter | None = None,
) -> Iterator[tuple[Path, set[str]]]:
    """(mount point, whole-disk devices of every carrier) of the medium carrying the marker,
    mounted read-only while the context lasts; MissingError naming what was searched."""
    blocks = blocks or SysBlock()
    mounter = mounter or Iso9660Mounter()
    scan = scan_media(medium_id, work_dir, blocks=blocks, mounter=mounter, keep=True)
    if scan.mounted is None:
        raise scan.not_found(what)
    device, mountpoint = scan.mounted
    log.info("the rescue medium is %s (mounted on %s)", device, mountpoint)
    try:
        yield mountpoint, medium_devices(scan, blocks)
    finally:
        mounter.umount(mountpoint)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def rescue_medium_devices(
    config: RescueConfig | None = None,
    *,
    blocks: SysBlock | None = None,
    mounter: Mounter | None = None,
) -> set[str]:
    """The disk(s) the rescue system booted from (a CD, a USB stick): those carrying its
    marker. Empty for PXE or a RAM disk, and for a rescue.json without a medium id."""
    return _booted_from(config or rescueconf.load(), blocks or SysBlock(), mounter)


def _booted_from(config: RescueConfig, blocks: SysBlock, mounter: Mounter | None) -> set[str]:
    if not config.medium_id:
        return set()
    with tempfile.TemporaryDirectory(prefix="mkmedia-medium.") as work:
        scan = scan_media(
            config.medium_id,
            Path(work),
            blocks=blocks,
            mounter=mounter or Iso9660Mounter(),
            keep=False,
        )
    return medium_devices(scan, blocks)


def _require_directory(directory: Path, where: str, hint: str) -> None:
    if not directory.is_dir():
        raise BackupError(f"There is no backup directory {directory} ({where}).", hint=hint)


@contextlib.contextmanager
def located_backup(
    config: RescueConfig,
    work_dir: Path,
    *,
    blocks: SysBlock | None = None,
    mounter: Mounter | None = None,
) -> Iterator[LocatedBackup]:
    """The directory of this host's backup (BACKUP_URL of rescue.json), reachable while the
    context lasts, and the disks it and the rescue medium sit on."""
    url = config.backup_url
    if config.backup != "NETFS" or not url:
        raise ConfigError(
            f"This rescue system has no backup to restore: its rescue.json says "
            f"BACKUP={config.backup} and BACKUP_URL={url!r}.",
            hint="Build the rescue media with `mkmedia mkbackup` and BACKUP=NETFS, or restore "
            "by hand from the shell.",
        )
    Netfs.check_url(url)
    parsed = parse_url(url)
    blocks = blocks or SysBlock()
    work_dir.mkdir(parents=True, exist_ok=True)
    if parsed.scheme == "iso":
        if not config.medium_id:
            raise ConfigError(
                f"BACKUP_URL={url!r} puts the backup into the rescue ISO, but "
                f"{rescueconf.RESCUE_CONF} carries no medium id to find the medium by.",
                hint="Build the rescue media again with this version of mkmedia.",
            )
        name = parsed.path.strip("/")
        with mounted_medium(
            config.medium_id,
            work_dir,
            what=f"the backup (BACKUP_URL={url})",
            blocks=blocks,
            mounter=mounter,
        ) as (mountpoint, devices):
            directory = mountpoint / name
            _require_directory(
                directory,
                f"BACKUP_URL={url} on the rescue medium",
                "The medium was made without its backup: make it again with `mkmedia "
                "mkbackup` (not `mkmedia build`).",
            )
            yield LocatedBackup(directory, devices)
        return
    booted = _booted_from(config, blocks, mounter)
    if parsed.scheme == "tape":
        from rescue_runtime.backup import tapemedium

        with tapemedium.located(config, parsed.path, work_dir) as (directory, tape):
            # a disk holding the tape image is the medium too: never a recover target
            kernel_name = blocks.name_of(tape) if tape.startswith("/dev/") else None
            disks = blocks.whole_disks(kernel_name) if kernel_name else set()
            yield LocatedBackup(directory, booted | {blocks.device(d) for d in disks})
        return
    options = str(config.settings.get("BACKUP_OPTIONS") or "")
    with Netfs.target(url, config.hostname, options=options, work_dir=work_dir) as directory:
        hint = (
            f"Mount the share that holds the backups on {parsed.path} first (it must hold "
            f"{directory.name}/), or correct BACKUP_URL."
            if parsed.scheme == "file"
            else f"Check that the stick holds {usbstick.BACKUP_DIR}/{directory.name}/ (plug in "
            "the one the backup was made on)."
            if parsed.scheme == "usb"
            else f"Check that the server holds {parsed.path}/{directory.name}/."
        )
        _require_directory(directory, f"BACKUP_URL={url}", hint)
        yield LocatedBackup(
            directory, booted | {blocks.device(d) for d in blocks.holding(directory)}
        )
