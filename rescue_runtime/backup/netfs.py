"""BACKUP=NETFS: GNU tar (POSIX format, every piece of metadata) streamed through zstd -T0.

Python arranges and checks; tar and zstd stream through a kernel pipe (archive.py). A backup
directory holds `backup-manifest.json` and the volumes of a chain of archives: one
`backup.tar.zst` by default; numbered volumes with BACKUP_VOLUME_SIZE (volumes.py);
incremental or differential archives after the full one with BACKUP_TYPE (chain.py);
`.enc` volumes with BACKUP_CRYPT_KEY_FILE (crypt.py). Everything is written under temporary
names and renamed only when the backup is complete (commit.py), so a failed or interrupted
run leaves the previous backup as it was. create.py makes an archive, restore.py checks and
restores.

Targets (BACKUP_URL): file:///DIR puts the backup in DIR/<hostname>/; sshfs://, nfs:// and
cifs:// the same on a server, usb:// on a stick made by `mkmedia format`, mounted for the time
of the run (rescue_runtime/backup/mount.py); iso:///NAME puts it into the rescue ISO under
/NAME (mkmedia mkbackup makes it before writing the ISO);
tape:///dev/nstN or tape:///PATH.tap puts it onto a tape (rescue_runtime/tape/layout.py: the
stream made here is staged in the build area, then written in records after its manifest;
with OUTPUT=OBDR after the bootable ISO on the same tape; one volume, one archive).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from rescue_runtime.backup import create, mount
from rescue_runtime.backup import restore as restoring
from rescue_runtime.backup.archive import Stream
from rescue_runtime.backup.base import BackupMethod
from rescue_runtime.backup.mount import mounted
from rescue_runtime.backup.progress import GiB, MiB, ProgressFunc
from rescue_runtime.backup.sources import BackupPlan, Source
from rescue_runtime.backup.spanning import MediumFinder
from rescue_runtime.errors import ConfigError
from rescue_runtime.tape import check_tape_path
from rescue_runtime.url import Url, parse_url, url_scheme

VOLUME_NAME = "backup.tar.zst"  # a single-volume full backup
# iso://: what reading the rescue medium takes: the file system, the CD driver, the
# controllers a CD or a USB stick with the hybrid image hangs off (QEMU's BIOS machine: IDE on
# ata_piix; q35: AHCI; virtio-scsi), and the USB mass-storage stack.
ISO_MEDIUM_MODULES = (
    "isofs", "cdrom", "sr_mod", "sd_mod", "ata_piix", "ata_generic", "ahci", "virtio_scsi",
    "virtio_blk", "usb_storage", "uas", "xhci_pci", "ehci_pci",
)  # fmt: skip
# schemes that are named but not built yet (none now; a new one is refused here first)
NOT_YET: dict[str, str] = {}


def closing_line(manifest: dict[str, object]) -> str:
    seconds = float(manifest["seconds"])  # type: ignore[arg-type]
    size = int(manifest["bytes"])  # type: ignore[call-overload]
    rate = size / MiB / max(seconds, 1e-3)
    return (
        f"Backed up {manifest['files']} files, {size / GiB:.2f} GiB in {seconds:.1f} s "
        f"({rate:.0f} MiB/s) to {manifest['url']}"
    )


def target_source(directory: Path, plan: BackupPlan) -> Source | None:
    """The backed-up source whose file system would hold `directory`, or None."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    device = probe.stat().st_dev
    for source in plan.sources:
        try:
            if os.stat(plan.host_path(source.path)).st_dev == device:
                return source
        except OSError:
            continue
    return None


class Netfs(BackupMethod):
    name = "NETFS"
    url_schemes = ("file", "iso", *mount.MOUNTED, "tape")
    # btrfs (subvolumes) comes with the default PROGS when the host has it.
    rescue_programs = ("tar", "zstd", "cat", "mount", "umount", "losetup", "stat")

    @classmethod
    def programs_for(cls, url: str) -> tuple[str, ...]:
        if url and url_scheme(url) == "tape":
            # lsscsi finds an OBDR drive still in CD emulation, sg_wr_mode switches it back
            return (*cls.rescue_programs, "lsscsi", "sg_wr_mode")
        return (*cls.rescue_programs, *mount.PROGRAMS.get(url_scheme(url) if url else "", ()))

    @classmethod
    def modules_for(cls, url: str) -> tuple[str, ...]:
        if url and url_scheme(url) == "iso":
            return ISO_MEDIUM_MODULES
        if url and url_scheme(url) == "tape":
            # the drive (st, sg), and the CD emulation or disk an OBDR tape boots from
            return ("st", "sg", *ISO_MEDIUM_MODULES)
        return mount.MODULES.get(url_scheme(url) if url else "", ())

    @classmethod
    def rescue_files(cls, url: str, options: str) -> tuple[str, ...]:
        return mount.rescue_files(parse_url(url), options) if url else ()

    @classmethod
    def check_options(cls, url: str, options: str) -> None:
        mount.check_options(cls.location(url, ""), options)

    @classmethod
    def check_url(cls, url: str) -> None:
        if not url:
            raise ConfigError(
                "BACKUP=NETFS needs BACKUP_URL: where the backup goes.",
                hint="Set BACKUP_URL to file:///DIRECTORY, iso:///backup or tape:///dev/nst0.",
            )
        scheme = url_scheme(url)
        if scheme in NOT_YET:
            raise ConfigError(
                f"BACKUP_URL={url!r}: {scheme}:// needs {NOT_YET[scheme]}, which this version "
                "of mkmedia does not have yet.",
                hint="Use file:///DIRECTORY (a mounted share works), sshfs://USER@HOST/DIR, "
                "iso:///backup or tape:///dev/nst0.",
            )
        if scheme not in cls.url_schemes:
            raise ConfigError(
                f"BACKUP_URL={url!r} has the scheme {scheme!r}, which BACKUP=NETFS does not know.",
                hint="Use file:///DIRECTORY or iso:///backup.",
            )
        parsed = parse_url(url)
        if parsed.scheme in mount.MOUNTED:
            mount.check_location(parsed)
            return
        if parsed.host not in ("", "localhost"):
            raise ConfigError(
                f"BACKUP_URL={url!r} names the host {parsed.host!r}; {parsed.scheme}:// URLs "
                "name local paths.",
                hint=f"Write it with three slashes: {parsed.scheme}:///path.",
            )
        if parsed.scheme == "tape":
            check_tape_path(parsed.path, f"BACKUP_URL={url!r}")
        if parsed.scheme == "iso" and (parsed.path == "/" or parsed.path.count("/") != 1):
            raise ConfigError(
                f"BACKUP_URL={url!r}: an iso:// URL names one top-level directory of the ISO.",
                hint="Write it as iso:///backup.",
            )

    @classmethod
    def location(cls, url: str, hostname: str) -> Url:
        cls.check_url(url)
        return parse_url(url)

    @classmethod
    def backup_dir(cls, url: str, hostname: str) -> Path:
        """file://DIR: the host's backup directory DIR/<hostname>."""
        parsed = cls.location(url, hostname)
        if parsed.scheme != "file":
            raise ConfigError(f"BACKUP_URL={url!r} is not a directory on this machine.")
        return Path(parsed.path) / hostname.split(".")[0]

    @classmethod
    @contextlib.contextmanager
    def target(
        cls, url: str, hostname: str, *, options: str = "", work_dir: Path
    ) -> Iterator[Path]:
        """The host's backup directory <location>/<hostname> of a file:// or mounted URL
        (sshfs, nfs, cifs, usb), mounted (under `work_dir`) while the context lasts."""
        parsed = cls.location(url, hostname)
        with mounted(parsed, options=options, work_dir=work_dir) as base:
            yield base / hostname.split(".")[0]

    @staticmethod
    def backup(
        plan: BackupPlan,
        directory: Path,
        *,
        url: str,
        layout_sha256: str | None,
        keep_old: bool = False,
        progress: ProgressFunc | None = None,
        zstd_level: int = 3,
        tar_options: Sequence[str] = (),
        backup_type: str = "full",
        volume_size: int = 0,
        key_file: Path | None = None,
    ) -> dict[str, object]:
        """Back up `plan` into `directory` (create.py); return the manifest written beside
        the volumes. `tar_options` go to tar's create command before the member names;
        `backup_type` full, incremental or differential; `volume_size` bytes per volume (0:
        one); `key_file` encrypts (crypt.py)."""
        request = create.Request(
            url=url,
            layout_sha256=layout_sha256,
            keep_old=keep_old,
            backup_type=backup_type,
            stream=Stream(key_file=key_file, volume_size=volume_size, zstd_level=zstd_level),
            tar_options=tuple(tar_options),
        )
        return create.make(plan, directory, request, progress)

    @staticmethod
    def verify(
        directory: Path, *, check_sha256: bool = True, key_file: Path | None = None
    ) -> dict[str, object]:
        """Manifest (and its HMAC with the key when encrypted), every volume with its size and
        sha256, the chain unbroken; writes nothing."""
        return restoring.check(directory, key_file=key_file, check_sha256=check_sha256)

    @staticmethod
    def restore(
        directory: Path,
        target_dir: Path,
        *,
        progress: ProgressFunc | None = None,
        make_subvolumes: bool = True,
        key_file: Path | None = None,
        finder: MediumFinder | None = None,
        skip_mounts: Sequence[str] = (),
        check_sha256: bool = True,
    ) -> dict[str, object]:
        """Verify, then extract the chain into `target_dir` and check the file counts.
        `finder` reaches the further media of a spanned backup; `skip_mounts` (mount points
        left out of the recovery) keep their directory, not their content."""
        return restoring.restore(
            directory,
            target_dir,
            key_file=key_file,
            progress=progress,
            make_subvolumes=make_subvolumes,
            finder=finder,
            skip_mounts=skip_mounts,
            check_sha256=check_sha256,
        )


extract_member = restoring.extract_member


def stale_partials(directory: Path) -> Sequence[Path]:
    """Leftovers of an interrupted run (removed at the start of the next one)."""
    return sorted(directory.glob(".*.partial"))


METHOD = Netfs
