"""Writing a whole tape: the target checked first, an image atomically, a drive in place.

A tape image is written under a temporary name beside it and renamed only when the last
filemark is on, so an interrupted or failed write leaves the previous image; a drive cannot
be written that way, so a failure says how far the write got and the tape is not declared
good (no artifact). A tape whose first record is not ours is written over only with `force`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mkmedia.session.artifacts import Artifact
from rescue_runtime import atomic
from rescue_runtime.backup.manifest import read_manifest, volumes
from rescue_runtime.errors import ConfigError, MissingError
from rescue_runtime.tape import check_tape_path, is_tape_device, open_tape
from rescue_runtime.tape.base import Tape, TapeError
from rescue_runtime.tape.layout import Backup, Writer, foreign_content
from rescue_runtime.tape.simh import SimhTape
from rescue_runtime.tape.st import is_st_device


def check_target(target: str, *, force: bool, setting: str, force_hint: str) -> None:
    """Before anything is built: the target names a tape that exists (an image's
    directory), and it holds nothing foreign unless `force`."""
    where = f"{setting}={target}" if setting else target
    check_tape_path(target, where)
    if is_tape_device(target):
        if not is_st_device(target):
            raise MissingError(
                f"{where} is not a tape drive of the st driver (no such character "
                "device, or another driver's).",
                hint="Check the name with `ls -l /dev/nst*` (lsscsi -g lists the drives).",
            )
    else:
        parent = Path(target).parent
        if not parent.is_dir():
            raise MissingError(
                f"The directory {parent} for the tape image {where} does not exist.",
                hint="Create it, or name the image in an existing directory.",
            )
        if not Path(target).exists() or Path(target).stat().st_size == 0:
            return  # a new image
    tape = open_tape(target)
    try:
        foreign = foreign_content(tape)
    except TapeError as exc:
        foreign = f"a first record that cannot be read ({exc.message})"
    finally:
        tape.close()
    if foreign is not None and not force:
        raise ConfigError(
            f"The tape {target} holds {foreign}; mkmedia does not write over another "
            "program's tape.",
            hint=f"Load a blank tape or one written by mkmedia, or {force_hint}.",
        )


def write_tape(target: str, write: Callable[[Tape], Writer], kind: str) -> Artifact:
    """Open `target` for writing, let `write` put the whole tape on, and return it as an
    artifact (an image: size and sha256; a drive: the bytes written, no sha256)."""
    if not is_tape_device(target):
        path = Path(target)
        with atomic.atomic_path(path) as partial:
            image = SimhTape(partial, write=True)
            try:
                write(image)
            finally:
                image.close()
            os.chmod(partial, 0o644)
        return Artifact.of(path, kind)
    tape = open_tape(target, write=True)
    try:
        writer = write(tape)
    finally:
        tape.close()
    return Artifact(Path(target), kind, writer.written, "")


def staged_backup(directory: Path) -> Backup:
    """The backup NETFS made in `directory`, as the tape layout takes it."""
    manifest = read_manifest(directory)
    listed = volumes(manifest)
    if len(listed) != 1:
        raise ConfigError(
            f"The backup in {directory} has {len(listed)} volumes; a tape holds one.",
            hint="Use BACKUP_TYPE=full and BACKUP_VOLUME_SIZE=0 with a tape.",
        )
    volume = listed[0]
    path = directory / str(volume["name"])
    if not path.is_file():
        raise MissingError(f"The backup volume {path} to put on the tape is missing.")
    return Backup(manifest, path)
