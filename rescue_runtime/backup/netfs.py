"""BACKUP=NETFS: GNU tar (POSIX format, every piece of metadata) streamed through zstd -T0.

Python arranges and checks; tar and zstd stream through a kernel pipe. A backup directory
holds `backup.tar.zst` and `backup-manifest.json`; both are written under temporary names
and renamed only when the backup is complete, so a failed or interrupted run leaves the
previous backup as it was.

Targets (BACKUP_URL): file:///DIR puts the backup in DIR/<hostname>/, sshfs://USER@HOST/DIR
the same on a server (mounted with sshfs for the time of the run); iso:///NAME puts it into
the rescue ISO under /NAME (mkmedia mkbackup makes it before writing the ISO).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup.base import BackupMethod
from rescue_runtime.backup.manifest import MANIFEST_NAME, BackupError
from rescue_runtime.backup.mount import mounted
from rescue_runtime.backup.progress import GiB, MiB, ProgressFunc, ProgressLine, read_bytes
from rescue_runtime.backup.sources import BackupPlan, Source
from rescue_runtime.errors import ConfigError
from rescue_runtime.run import pipeline, run
from rescue_runtime.url import Url, parse_url, url_scheme

VOLUME_NAME = "backup.tar.zst"
# The same metadata options on both sides: numeric owners, sparse files, every xattr (user.*
# and security.capability too: ReaR's defaults drop user.*), POSIX ACLs, SELinux labels.
TAR_METADATA = (
    "--format=posix",
    "--numeric-owner",
    "--sparse",
    "--xattrs",
    "--xattrs-include=*",
    "--acls",
    "--selinux",
)
# iso://: what reading the rescue medium takes: the file system, the CD driver, the
# controllers a CD or a USB stick with the hybrid image hangs off (QEMU's BIOS machine: IDE on
# ata_piix; q35: AHCI; virtio-scsi), and the USB mass-storage stack.
ISO_MEDIUM_MODULES = (
    "isofs", "cdrom", "sr_mod", "sd_mod", "ata_piix", "ata_generic", "ahci", "virtio_scsi",
    "virtio_blk", "usb_storage", "uas", "xhci_pci", "ehci_pci",
)  # fmt: skip
TAR_WARNING = 1  # GNU tar: "some files changed while being read" (a live system)
NOT_YET = {
    "nfs": "mounting NFS (this machine's kernel has no NFS client to test it with)",
    "cifs": "mounting CIFS (this machine's kernel has no CIFS client to test it with)",
    "usb": "USB backup sticks (`mkmedia format`)",
    "tape": "tapes (the OBDR work brings them)",
}


def closing_line(manifest: dict[str, object]) -> str:
    seconds = float(manifest["seconds"])  # type: ignore[arg-type]
    size = int(manifest["bytes"])  # type: ignore[call-overload]
    rate = size / MiB / max(seconds, 1e-3)
    return (
        f"Backed up {manifest['files']} files, {size / GiB:.2f} GiB in {seconds:.1f} s "
        f"({rate:.0f} MiB/s) to {manifest['url']}"
    )


def _tool_version(program: str) -> str:
    result = run([program, "--version"], check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def tar_exclude_options(plan: BackupPlan, work: Path) -> list[str]:
    """tar options for the plan's patterns: absolute ones anchored on the "./..." member
    names (ReaR's --anchored), relative ones ("*.tmp") matched at any depth."""
    patterns = [e.pattern for e in plan.exclusions if e.tar]
    anchored = [f".{p}" for p in patterns if p.startswith("/")]
    exclude_file = work / "exclude"
    exclude_file.write_text("".join(f"{p}\n" for p in anchored))
    options = ["--anchored", "--no-wildcards-match-slash", f"--exclude-from={exclude_file}"]
    relative = [p for p in patterns if not p.startswith("/")]
    if relative:
        # --no-anchored applies to the --exclude options after it
        options += ["--no-anchored", *(f"--exclude={p}" for p in relative)]
    return options


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _fstype(path: Path) -> str:
    return run(["stat", "-f", "-c", "%T", path], check=False).stdout.strip()


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
    url_schemes = ("file", "iso", "sshfs")
    # btrfs (subvolumes) comes with the default PROGS when the host has it.
    rescue_programs = ("tar", "zstd", "mount", "umount", "losetup", "stat")

    @classmethod
    def programs_for(cls, url: str) -> tuple[str, ...]:
        if url and url_scheme(url) == "sshfs":
            return (*cls.rescue_programs, "sshfs", "fusermount3")
        return cls.rescue_programs

    @classmethod
    def modules_for(cls, url: str) -> tuple[str, ...]:
        if url and url_scheme(url) == "iso":
            return ISO_MEDIUM_MODULES
        if url and url_scheme(url) == "sshfs":
            return ("fuse",)
        return ()

    @classmethod
    def check_url(cls, url: str) -> None:
        if not url:
            raise ConfigError(
                "BACKUP=NETFS needs BACKUP_URL: where the backup goes.",
                hint="Set BACKUP_URL to file:///DIRECTORY or iso:///backup.",
            )
        scheme = url_scheme(url)
        if scheme in NOT_YET:
            raise ConfigError(
                f"BACKUP_URL={url!r}: {scheme}:// needs {NOT_YET[scheme]}, which this version "
                "of mkmedia does not have yet.",
                hint="Use file:///DIRECTORY (a mounted share works), sshfs://USER@HOST/DIR or "
                "iso:///backup.",
            )
        if scheme not in cls.url_schemes:
            raise ConfigError(
                f"BACKUP_URL={url!r} has the scheme {scheme!r}, which BACKUP=NETFS does not know.",
                hint="Use file:///DIRECTORY or iso:///backup.",
            )
        parsed = parse_url(url)
        if parsed.scheme == "sshfs":
            if not parsed.hostname:
                raise ConfigError(
                    f"BACKUP_URL={url!r} names no server.",
                    hint="Write it as sshfs://user@server/path.",
                )
            if parsed.password is not None:
                raise ConfigError(
                    f"BACKUP_URL for {parsed.hostname} carries a password; a password never "
                    "goes into a setting or onto a command line.",
                    hint="Use an ssh key: BACKUP_OPTIONS=IdentityFile=/root/.ssh/KEY.",
                )
            parsed.port  # noqa: B018 - raises ConfigError for a bad port
            return
        if parsed.host not in ("", "localhost"):
            raise ConfigError(
                f"BACKUP_URL={url!r} names the host {parsed.host!r}; {parsed.scheme}:// URLs "
                "name local paths.",
                hint=f"Write it with three slashes: {parsed.scheme}:///path.",
            )
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
        """The host's backup directory <location>/<hostname> of a file:// or sshfs:// URL,
        mounted (under `work_dir`) while the context lasts."""
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
    ) -> dict[str, object]:
        """Back up `plan` into `directory`; return the manifest written beside the volume.

        `tar_options` go to tar's create command before the member names.
        """
        if not plan.sources:
            raise BackupError(
                "The saved layout mounts no file system, so there is nothing to back up.",
                hint="Save the layout again (`mkmedia layout save`) on the running system.",
            )
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{VOLUME_NAME}.partial"
        started, t0 = _now(), time.monotonic()
        total = sum(s.used_bytes for s in plan.sources)
        show = progress or ProgressLine("backup")
        with tempfile.TemporaryDirectory(prefix="mkmedia-backup.") as work:
            index = Path(work) / "index"
            tar = [
                "tar",
                "--create",
                "--file=-",
                f"--directory={plan.root}",
                *TAR_METADATA,
                "--one-file-system",
                *tar_exclude_options(plan, Path(work)),
                "--warning=no-xdev",
                "--warning=no-file-ignored",
                "--totals",
                "--verbose",
                f"--index-file={index}",
                *tar_options,
                "--",
                *[s.member for s in plan.sources],
            ]
            zstd = ["zstd", "-T0", f"-{zstd_level}", "-q", "-c"]
            try:
                result = pipeline(
                    [tar, zstd],
                    stdout_path=partial,
                    ok_codes=[(0, TAR_WARNING), (0,)],
                    on_tick=lambda pids: show(read_bytes(pids[0]), total),
                    what=f"backing up into {directory}",
                )
                _fsync(partial)
                files = _count_lines(index)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            finally:
                if isinstance(show, ProgressLine):
                    show.close()
        match = re.search(r"Total bytes written: (\d+)", result.stderrs[0])
        warnings = [
            line
            for line in result.stderrs[0].splitlines()
            if line.startswith("tar:") and "Total bytes" not in line
        ]
        seconds = time.monotonic() - t0
        document: dict[str, object] = {
            "format_version": manifests.FORMAT_VERSION,
            "method": "NETFS",
            "url": url,
            "root": plan.root,
            "volumes": [
                {
                    "name": VOLUME_NAME,
                    "size": partial.stat().st_size,
                    "sha256": manifests.sha256_file(partial),
                }
            ],
            "compression": f"zstd -{zstd_level}",
            "files": files,
            "bytes": int(match.group(1)) if match else 0,
            "filesystems": [s.__dict__ for s in plan.sources if s.kind == "mount"],
            "used_bytes": manifests.used_bytes_by_filesystem(plan.sources),
            "subvolumes": [s.__dict__ for s in plan.sources if s.kind == "subvolume"],
            "exclusions": [e.__dict__ for e in plan.exclusions],
            "layout_sha256": layout_sha256,
            "tar_options": list(TAR_METADATA),
            "tools": {"tar": _tool_version("tar"), "zstd": _tool_version("zstd")},
            "warnings": warnings,
            "started": started,
            "finished": _now(),
            "seconds": round(seconds, 3),
        }
        _complete(directory, partial, document, keep_old=keep_old)
        return document

    @staticmethod
    def verify(directory: Path, *, check_sha256: bool = True) -> dict[str, object]:
        """Manifest present, every volume present with its size and sha256; writes nothing."""
        return manifests.verify(directory, check_sha256=check_sha256)

    @staticmethod
    def restore(
        directory: Path,
        target_dir: Path,
        *,
        progress: ProgressFunc | None = None,
        make_subvolumes: bool = True,
        skip_mounts: Sequence[str] = (),
    ) -> dict[str, object]:
        """Verify, then extract the backup into `target_dir` and check the file count.

        On btrfs, the subvolumes the manifest records are created first (as subvolumes).
        `skip_mounts` (mount points left out of the recovery) keep their directory, not
        their content; the file count may then be lower.
        """
        document = manifests.verify(directory)
        volumes = manifests.volumes(document)
        if len(volumes) != 1:
            raise BackupError(
                f"The backup in {directory} has {len(volumes)} volumes; this version restores "
                "single-volume backups.",
                hint="Restore it with the mkmedia version that made it.",
            )
        if not target_dir.is_dir():
            raise BackupError(
                f"The restore target {target_dir} is not a directory.",
                hint="Create and mount it first.",
            )
        subvolumes = document.get("subvolumes") or []
        if make_subvolumes and subvolumes and _fstype(target_dir) == "btrfs":
            assert isinstance(subvolumes, list)
            for sub in subvolumes:
                path = target_dir / str(sub["path"]).lstrip("/")
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    run(["btrfs", "subvolume", "create", path], what="recreating a subvolume")
        volume = directory / str(volumes[0]["name"])
        size = int(volumes[0]["size"])  # type: ignore[call-overload]
        show = progress or ProgressLine("restore")
        with tempfile.TemporaryDirectory(prefix="mkmedia-restore.") as work:
            index = Path(work) / "index"
            tar = [
                "tar",
                "--extract",
                "--file=-",
                f"--directory={target_dir}",
                *TAR_METADATA,
                "--preserve-permissions",
                "--same-owner",
                "--verbose",
                f"--index-file={index}",
                "--anchored",
                *[f"--exclude=.{m.rstrip('/')}/*" for m in skip_mounts],
            ]
            try:
                pipeline(
                    [["zstd", "-d", "-q", "-c"], tar],
                    stdin_path=volume,
                    on_tick=lambda pids: show(read_bytes(pids[0]), size),
                    what=f"restoring {volume} into {target_dir}",
                )
            finally:
                if isinstance(show, ProgressLine):
                    show.close()
            restored = _count_lines(index)
        expected = int(document["files"])  # type: ignore[call-overload]
        if restored != expected and not (skip_mounts and restored < expected):
            raise BackupError(
                f"Restoring {volume} into {target_dir} gave {restored} files, the manifest "
                f"says {document['files']}.",
                hint="The backup is incomplete: check the log, and restore from another copy.",
            )
        return {"files": restored, "target": str(target_dir), "manifest": document}


class _NotInBackup(Exception):
    """extract_member: tar found no such member (nothing is left behind)."""


def extract_member(directory: Path, path: str, destination: Path) -> bool:
    """Copy the file at `path` (as the backed-up system had it, "/etc/keys/x") out of the
    backup in `directory` into `destination` (mode 0600); False when the backup lacks it.
    tar stops at the first copy, so only the archive up to it is read."""
    document = manifests.read_manifest(directory)
    volume = directory / str(manifests.volumes(document)[0]["name"])
    member = "." + path if path.startswith("/") else path
    try:
        with atomic.atomic_path(destination, mode=0o600) as partial:
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            pipeline(
                [
                    ["zstd", "-d", "-q", "-c"],
                    ["tar", "--extract", "--file=-", "--to-stdout", "--occurrence=1", member],
                ],
                stdin_path=volume,
                stdout_path=partial,
                # zstd: a broken pipe once tar has stopped; tar 2: no such member
                ok_codes=[(0, 1, -13), (0, 2)],
                what=f"reading {path} out of the backup",
            )
            if partial.stat().st_size == 0:
                raise _NotInBackup(path)
    except _NotInBackup:
        return False
    return True


def _complete(
    directory: Path, partial: Path, document: dict[str, object], *, keep_old: bool
) -> None:
    """Put the finished volume and manifest under their final names; with `keep_old`, the
    previous backup moves to <directory>.old (replacing an older copy) instead of going."""
    manifest = directory / MANIFEST_NAME
    final = directory / VOLUME_NAME
    if keep_old and manifest.exists():
        old = directory.with_name(f"{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir()
        for path in (final, manifest):
            if path.exists():
                os.replace(path, old / path.name)
    else:
        # The old manifest goes first: a volume never sits beside a manifest not its own.
        manifest.unlink(missing_ok=True)
    os.replace(partial, final)
    manifests.write_json_atomic(manifest, document)
    _fsync(directory)


def stale_partials(directory: Path) -> Sequence[Path]:
    """Leftovers of an interrupted run (removed at the start of the next one)."""
    return sorted(directory.glob(".*.partial"))


METHOD = Netfs
