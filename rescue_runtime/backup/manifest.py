"""backup-manifest.json: what a backup holds and how to check it before restoring.

It lists the volumes (name, size, sha256), the file count and bytes, what was backed up and
left out, the layout the backup belongs to (sha256 of layout.json), the tools and the times.
`verify` checks a backup directory against it without writing anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.errors import MkmediaError

MANIFEST_NAME = "backup-manifest.json"
TAPE_SOURCE = "tape-source.json"  # beside a manifest read from a tape: which tape
FORMAT_VERSION = 1


class BackupError(MkmediaError):
    """A backup is missing, incomplete or damaged (found before anything is written)."""


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, document: dict[str, object]) -> None:
    """Write beside `path` under a temporary name, fsync, rename."""
    atomic.write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> dict[str, object]:
    path = directory / MANIFEST_NAME
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(
            f"There is no backup manifest {path}: no complete backup is in {directory}.",
            hint="Check BACKUP_URL, or make a backup with `mkmedia mkbackup`.",
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"The backup manifest {path} cannot be read ({exc}).",
            hint="The backup is damaged: make a new one.",
        ) from None
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"The backup manifest {path} is not a format {FORMAT_VERSION} manifest.",
            hint="Restore it with the mkmedia version that made it, or make a new backup.",
        )
    return document


def volumes(manifest: dict[str, object]) -> list[dict[str, object]]:
    found = manifest.get("volumes")
    if not isinstance(found, list) or not found:
        raise BackupError("The backup manifest lists no volumes.", hint="Make a new backup.")
    return found


def verify(directory: Path, *, check_sha256: bool = True) -> dict[str, object]:
    """Every volume is present with its size and sha256; returns the manifest. A backup on
    a tape (tape-source.json beside the manifest) is checked while it is read from the tape:
    the restore streams it (rescue_runtime/backup/tapemedium.py)."""
    manifest = read_manifest(directory)
    if (directory / TAPE_SOURCE).is_file():
        volumes(manifest)
        return manifest
    for volume in volumes(manifest):
        path = directory / str(volume["name"])
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise BackupError(
                f"The backup volume {path} is missing.",
                hint="Copy the whole backup directory, or make a new backup.",
            ) from None
        if size != volume["size"]:
            raise BackupError(
                f"The backup volume {path} has {size} bytes, its manifest says "
                f"{volume['size']}: it is truncated or was changed.",
                hint="Nothing was restored. Use an intact copy of the backup, or make a new one.",
            )
        if check_sha256 and sha256_file(path) != volume["sha256"]:
            raise BackupError(
                f"The backup volume {path} does not match the sha256 in its manifest: it is "
                "damaged.",
                hint="Nothing was restored. Use an intact copy of the backup, or make a new one.",
            )
    return manifest
