"""backup-manifest.json: what a backup holds and how to check it before restoring.

It lists the volumes (name, size, sha256), the file count and bytes, what was backed up and
left out, the layout the backup belongs to (sha256 of layout.json), the space each file
system used (`used_bytes`, by layout component id: recover sizes smaller disks by it), the
tools and the times.
`verify` checks a backup directory against it without writing anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from rescue_runtime import atomic
from rescue_runtime.backup.sources import Source
from rescue_runtime.errors import MkmediaError

MANIFEST_NAME = "backup-manifest.json"
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
    """Every volume is present with its size and sha256; returns the manifest."""
    manifest = read_manifest(directory)
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


def used_bytes_by_filesystem(sources: Iterable[Source]) -> dict[str, int]:
    """What each backed-up file system used at backup time, keyed by its layout component
    id ("fs:/dev/mapper/vg-root"), so recover can size a smaller target by it. A file system
    mounted twice (btrfs subvolumes) counts once; swap and unknown (0) are left out."""
    used: dict[str, int] = {}
    for source in sources:
        if source.kind == "mount" and source.used_bytes > 0:
            key = f"fs:{source.device}"
            used[key] = max(used.get(key, 0), source.used_bytes)
    return used


def used_bytes(manifest: dict[str, object]) -> dict[str, int]:
    """The manifest's used bytes per file system component id ({} when it has none); older
    manifests have them only in their `filesystems` list."""
    recorded = manifest.get("used_bytes")
    if isinstance(recorded, dict):
        return {str(k): int(v) for k, v in recorded.items() if isinstance(v, int)}
    used: dict[str, int] = {}
    for entry in manifest.get("filesystems") or []:  # type: ignore[attr-defined]
        if isinstance(entry, dict) and isinstance(entry.get("used_bytes"), int):
            key = f"fs:{entry.get('device')}"
            used[key] = max(used.get(key, 0), entry["used_bytes"])
    return {k: v for k, v in used.items() if v > 0}
