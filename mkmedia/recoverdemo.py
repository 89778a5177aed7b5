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
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.backup.progress import ProgressFunc
from rescue_runtime.errors import ConfigError, MissingError
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


def _check_target(target: Path) -> None:
    resolved = target.resolve()
    if resolved == Path("/"):
        raise ConfigError(
            "recover --demo restores into a directory; / is the running system.",
            hint="Name an empty directory, e.g. /var/tmp/restore-demo.",
        )
    if resolved.exists() and (not resolved.is_dir() or any(resolved.iterdir())):
        raise ConfigError(
            f"recover --demo needs an empty directory (or a new one); {target} is not.",
            hint="Name an empty or a new directory.",
        )


def demo_restore(config: Config, target: Path, progress: ProgressFunc) -> dict[str, object]:
    """Restore BACKUP_URL's backup into `target` (new or empty); returns restore's result."""
    if config.get_str("BACKUP") != "NETFS":
        raise ConfigError(
            f"recover --demo restores a BACKUP=NETFS backup; this configuration has "
            f"BACKUP={config.get_str('BACKUP')}.",
            hint="Set BACKUP=NETFS and BACKUP_URL to where the backup is.",
        )
    url = config.get_str("BACKUP_URL")
    Netfs.check_url(url)
    _check_target(target)
    target.mkdir(parents=True, exist_ok=True)
    parsed = parse_url(url)
    parent = Path(config.get_str("TMPDIR"))
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mkmedia-demo.", dir=parent) as work:
        if parsed.scheme != "iso":
            with Netfs.target(
                url,
                config.system.hostname,
                options=config.get_str("BACKUP_OPTIONS"),
                work_dir=Path(work),
            ) as directory:
                return Netfs.restore(directory, target, progress=progress)
        name = parsed.path.strip("/")
        copy = extract_iso_directory(_iso_path(config), name, Path(work))
        os.chmod(copy, 0o700)
        return Netfs.restore(copy, target, progress=progress)


def _iso_path(config: Config) -> Path:
    """Where OUTPUT=ISO wrote the media this configuration describes."""
    spec = media_spec(config)
    return spec.directory / f"{spec.prefix}.iso"
