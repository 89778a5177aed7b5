"""Putting a finished archive under its final names, as one step as far as a reader sees.

The new volumes and snapshot file go from their `.partial` names to their final ones, then
the manifest is written (atomically); only then do files the new manifest no longer lists go.
An archive added to a chain (incremental, differential) has new names, so the old manifest
stays right until the new one replaces it. A new chain replaces the old one: its manifest
goes first (a volume never sits beside a manifest not its own), or, with keep_old
(NETFS_KEEP_OLD_BACKUP_COPY), the whole previous backup moves to <directory>.old.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup.manifest import MANIFEST_NAME


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def listed_files(document: dict[str, object]) -> set[str]:
    """The volumes and snapshot files a manifest names."""
    names = {str(v["name"]) for v in document.get("volumes") or []}  # type: ignore[attr-defined]
    for archive in document.get("archives") or []:  # type: ignore[attr-defined]
        if archive.get("snapshot"):
            names.add(str(archive["snapshot"]))
    return names


def _old_document(manifest: Path) -> dict[str, object] | None:
    try:
        found = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def complete(
    directory: Path,
    new_files: list[tuple[Path, str]],
    document: dict[str, object],
    *,
    new_chain: bool,
    keep_old: bool,
) -> None:
    """Rename each (partial, final name) of `new_files` and write `document` as the manifest.
    A `new_chain` (a full archive) replaces the old backup; otherwise the document adds to it."""
    manifest = directory / MANIFEST_NAME
    old = _old_document(manifest)
    old_files = listed_files(old) if old else set()
    if keep_old and old is not None and new_chain:
        keep = directory.with_name(f"{directory.name}.old")
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir()
        for name in [*sorted(old_files), MANIFEST_NAME]:
            if (directory / name).exists():
                os.replace(directory / name, keep / name)
        old_files = set()
    elif new_chain:
        manifest.unlink(missing_ok=True)
    for partial, name in new_files:
        os.replace(partial, directory / name)
    manifests.write_json_atomic(manifest, document)
    for name in sorted(old_files - listed_files(document)):
        (directory / name).unlink(missing_ok=True)
    fsync(directory)
