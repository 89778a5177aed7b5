"""The set of outputs is replaced as a whole, or not at all.

Emitters write into a staging directory beside the output directory (same file system). Only
when every emitter and the report succeeded are the staged files renamed into place and the
manifest written, last. The old manifest is removed before the first rename, so at no moment
does a manifest name files that have changed; a run that fails before the commit leaves the
previous media and their manifest exactly as they were, and no staged file behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from mkmedia.session.artifacts import Artifact

MANIFEST = "manifest.json"


def staging_for(directory: Path) -> Path:
    """The staging directory of an output directory (hidden, beside it)."""
    return directory.parent / f".{directory.name}.staging"


def open_staging(directory: Path) -> Path:
    """A fresh, empty staging directory for `directory` (a stale one from a killed run goes)."""
    staging = staging_for(directory)
    discard(staging)
    staging.mkdir(parents=True)
    return staging


def discard(staging: Path) -> None:
    if staging.is_symlink() or staging.is_file():
        staging.unlink()
    else:
        shutil.rmtree(staging, ignore_errors=True)


def commit(staging: Path, directory: Path, artifacts: Sequence[Artifact]) -> list[Artifact]:
    """Move everything staged into `directory` and return the artifacts with their final
    paths; artifacts outside the staging directory (a burnt disc) are returned unchanged.
    The caller writes the new manifest afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    for entry in sorted(staging.iterdir()):
        target = directory / entry.name
        if target.is_dir() and not target.is_symlink() and entry.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    result = []
    for artifact in artifacts:
        try:
            relative = artifact.path.relative_to(staging)
        except ValueError:
            result.append(artifact)
            continue
        result.append(dataclasses.replace(artifact, path=directory / relative))
    discard(staging)
    return result
