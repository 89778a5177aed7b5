"""The private build directory of a run: created under TMPDIR with its owner recorded, so that
one left by a run that died hard (SIGKILL, power loss) is removed by the next run."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

from mkmedia.errors import ConfigError
from mkmedia.owner import Owner, read_record

log = logging.getLogger("mkmedia.builddir")

PREFIX = "mkmedia."
OWNER_FILE = ".mkmedia-owner"


def _unusable(parent: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"Cannot create the build directory under TMPDIR={parent}: {problem}.",
        hint="Set TMPDIR (in local.yaml or with --set TMPDIR=DIR) to a directory mkmedia can "
        "write, with room for the rescue tree (a few hundred MB).",
    )


def make_build_dir(parent: Path) -> Path:
    """A new private directory `mkmedia.<pid>.<random>` under `parent`, owned by this run."""
    if parent.exists() and not parent.is_dir():
        raise _unusable(parent, "it exists and is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}.", dir=parent))
    except OSError as exc:
        raise _unusable(parent, exc.strerror or str(exc)) from exc
    try:
        # Renamed into place: a reaper reading a half-written record could take a live run's
        # directory for a dead one's.
        partial = path / f"{OWNER_FILE}.partial"
        partial.write_text(Owner.current().to_text(), encoding="utf-8")
        partial.replace(path / OWNER_FILE)
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise _unusable(parent, exc.strerror or str(exc)) from exc
    return path


def disown(path: Path) -> None:
    """Keep a build directory for good (--keep-build-dir): no later run may reap it."""
    (path / OWNER_FILE).unlink(missing_ok=True)


def _dead_owner(path: Path) -> Owner | None:
    """The owner of a build directory when it is certainly dead; None for a live, kept (no
    record) or foreign one (another user's: never removed)."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    owner = read_record(path / OWNER_FILE)
    if owner is None or owner.pid == os.getpid() or owner.alive():
        return None
    return owner


def reap_build_dirs(parent: Path) -> list[Path]:
    """Remove the build directories under `parent` whose owning run is certainly dead."""
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    reaped = []
    for path in entries:
        owner = _dead_owner(path) if path.name.startswith(PREFIX) else None
        if owner is None:
            continue
        log.warning(
            "removing the build directory %s left by mkmedia %s, which is no longer running",
            path,
            owner.describe(),
        )
        shutil.rmtree(path, ignore_errors=True)
        reaped.append(path)
    return reaped
