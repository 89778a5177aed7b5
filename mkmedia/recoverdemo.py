"""`mkmedia recover --demo DIR` on the host: restore the configured backup into a directory.

It proves a backup can be restored and touches no disk. iso:// backups are read out of the
ISO with xorriso (a host kernel need not have iso9660; the rescue system mounts the medium).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mkmedia.config import Config
from mkmedia.steps.output import media_spec
from rescue_runtime.backup import tapemedium
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.backup.progress import ProgressFunc
from rescue_runtime.errors import MissingError
from rescue_runtime.recover.demo import check_demo_method, check_demo_target, demo_target
from rescue_runtime.run import run
from rescue_runtime.url import parse_url


def extract_iso_directory(iso: Path, name: str, destination: Path) -> Path:
    """Copy the ISO's top-level directory `name` out with xorriso; returns its copy."""
    if not iso.is_file():
        raise MissingError(
            f"The ISO {iso} that should carry the backup (BACKUP_URL=iso:///{name}) does not "
            "exist.",
            hint="Make it with `mkmedia mkbackup` first.",
        )
    target = destination / name
    run(
        ["xorriso", "-osirrox", "on", "-indev", iso, "-extract", f"/{name}", target],
        what=f"reading the backup out of {iso}",
    )
    return target


def demo_restore(config: Config, target: Path, progress: ProgressFunc) -> dict[str, object]:
    """Restore BACKUP_URL's backup into `target` (new or empty); returns restore's result."""
    check_demo_method(config.get_str("BACKUP"))
    url = config.get_str("BACKUP_URL")
    Netfs.check_url(url)
    check_demo_target(target)
    parsed = parse_url(url)
    key = (
        Path(config.get_str("BACKUP_CRYPT_KEY_FILE"))
        if config.get_str("BACKUP_CRYPT_KEY_FILE")
        else None
    )
    parent = Path(config.get_str("TMPDIR"))
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mkmedia-demo.", dir=parent) as work:
        if parsed.scheme == "tape":  # the tape (image) named, streamed as in the rescue system
            with tapemedium.read_from(parsed.path, Path(work)) as directory, demo_target(target):
                return Netfs.restore(directory, target, progress=progress, key_file=key)
        if parsed.scheme != "iso":
            with (
                Netfs.target(
                    url,
                    config.system.hostname,
                    options=config.get_str("BACKUP_OPTIONS"),
                    work_dir=Path(work),
                ) as directory,
                demo_target(target),
            ):
                return Netfs.restore(directory, target, progress=progress, key_file=key)
        name = parsed.path.strip("/")
        copy = extract_iso_directory(_iso_path(config), name, Path(work))
        os.chmod(copy, 0o700)
        with demo_target(target):
            return Netfs.restore(copy, target, progress=progress, key_file=key)


def _iso_path(config: Config) -> Path:
    """Where OUTPUT=ISO wrote the media this configuration describes."""
    spec = media_spec(config)
    return spec.directory / f"{spec.prefix}.iso"
