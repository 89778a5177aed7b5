"""tape://: the backup on a tape, found and streamed inside the rescue system.

The tape is the one whose label names this host (and, for an OBDR tape, this rescue
system's medium id): BACKUP_URL's device when it carries it, else every /dev/nstN and every
disk that holds a SIMH tape image (a .tap attached to a virtual machine as a disk reads as
the same byte stream). A drive booted in OBDR CD emulation is switched back to tape mode
first (rescue_runtime/tape/obdr.py).

`located()` puts the backup's manifest (read from the tape) into a directory with
`tape-source.json` beside it naming the tape; the restore then streams the backup from the
tape (`volume_stream`) instead of a file: rewind, past the first filemark, past the manifest,
the records into a FIFO that zstd reads, their size and sha256 checked against the manifest
when the stream ends. Nothing of the backup is copied to RAM or disk first.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.backup.manifest import (
    MANIFEST_NAME,
    TAPE_SOURCE,
    BackupError,
    write_json_atomic,
)
from rescue_runtime.errors import MissingError
from rescue_runtime.rescueconf import RescueConfig
from rescue_runtime.tape import label_at, open_tape
from rescue_runtime.tape.base import TapeError
from rescue_runtime.tape.label import MAGIC, RECORD_SIZE, Label
from rescue_runtime.tape.layout import open_backup, stream_backup
from rescue_runtime.tape.obdr import switch_to_tape_mode

log = logging.getLogger("mkmedia.tape")
# A disk holding a tape image starts with our label's record: its length word, the magic.
IMAGE_START = struct.pack("<I", RECORD_SIZE) + MAGIC


def is_on_tape(directory: Path) -> bool:
    return (directory / TAPE_SOURCE).is_file()


def _holds_image(device: str) -> bool:
    try:
        with open(device, "rb") as f:
            return f.read(len(IMAGE_START)) == IMAGE_START
    except OSError:
        return False


def candidates(url_path: str, sys_root: Path = Path("/sys"), dev: Path = Path("/dev")) -> list[str]:
    """BACKUP_URL's device, the tape drives, the whole disks holding a tape image."""
    found = [url_path] if os.path.exists(url_path) else []
    found += sorted(glob.glob(str(dev / "nst[0-9]*")))
    block = sys_root / "class" / "block"
    names = sorted(p.name for p in block.iterdir()) if block.is_dir() else []
    for name in names:
        if (block / name / "partition").exists():
            continue
        device = str(dev / name)
        if _holds_image(device):
            found.append(device)
    return list(dict.fromkeys(found))


def matches(label: Label, config: RescueConfig) -> bool:
    host = config.hostname.split(".")[0]
    if label.host.split(".")[0] != host or label.kind == "blank":
        return False
    return label.kind != "obdr" or label.medium_id.lower() == config.medium_id.lower()


def find_tape(config: RescueConfig, url_path: str) -> tuple[str, Label]:
    """The device (or image) carrying this host's backup, and its label."""
    switch_to_tape_mode(str(config.settings.get("TAPE_OBDR_MODE_PAGE") or ""))
    looked_at = []
    for path in candidates(url_path):
        try:
            label = label_at(path)
        except TapeError as exc:
            looked_at.append(f"{path}: {exc.message}")
            continue
        if label is not None and matches(label, config):
            return path, label
        what = "no mkmedia label" if label is None else f"{label.kind} tape of {label.host!r}"
        looked_at.append(f"{path}: {what}")
    raise MissingError(
        f"No tape carries the backup of {config.hostname} (BACKUP_URL=tape://{url_path}). "
        f"Looked at: {'; '.join(looked_at) or 'no tape drive and no disk with a tape image'}.",
        hint="Load the tape (a drive booted from the tape in OBDR mode must be back in tape "
        "mode: TAPE_OBDR_MODE_PAGE or the drive's manual), or attach the tape image.",
    )


@contextlib.contextmanager
def located(config: RescueConfig, url_path: str, work_dir: Path) -> Iterator[tuple[Path, str]]:
    """(a directory with the tape's backup manifest and tape-source.json, the tape's path)
    for the tape carrying this host's backup."""
    path, _ = find_tape(config, url_path)
    with read_from(path, work_dir) as directory:
        yield directory, path


@contextlib.contextmanager
def read_from(path: str, work_dir: Path) -> Iterator[Path]:
    """The directory standing for the backup on the tape `path` while the context lasts:
    its manifest (read from the tape) and tape-source.json naming the tape."""
    tape = open_tape(path)
    try:
        on_tape = open_backup(tape)
    finally:
        tape.close()
    directory = work_dir / "tape"
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / MANIFEST_NAME, on_tape.manifest)
    write_json_atomic(directory / TAPE_SOURCE, {"device": path, "label": on_tape.label.__dict__})
    log.info("the backup is on the %s tape %s", on_tape.label.kind, path)
    try:
        yield directory
    finally:
        for name in (MANIFEST_NAME, TAPE_SOURCE):
            (directory / name).unlink(missing_ok=True)


def _feed(
    device: str, manifest: dict[str, object], fifo: Path, errors: list[BaseException]
) -> None:
    """The feeder thread: the tape's backup stream into the FIFO."""
    try:
        tape = open_tape(device)
        try:
            on_tape = open_backup(tape)
            if on_tape.manifest != manifest:
                raise BackupError(f"The tape in {device} holds another backup than before.")
            with open(fifo, "wb", buffering=0) as out:
                stream_backup(tape, on_tape, out.write)
        finally:
            tape.close()
    except BrokenPipeError:
        pass  # the reader has what it wanted (extract_member stops at its file)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            errors.append(exc)
    except BaseException as exc:  # handed to the caller's thread
        errors.append(exc)


@contextlib.contextmanager
def volume_stream(directory: Path, work_dir: Path) -> Iterator[Path]:
    """A FIFO carrying the backup stream from the tape while the context lasts; when it ends,
    a failure of the tape side (size, sha256, I/O) is raised."""
    source = json.loads((directory / TAPE_SOURCE).read_text())
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    fifo = work_dir / "tape-stream"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)
    errors: list[BaseException] = []
    feeder = threading.Thread(
        target=_feed, args=(str(source["device"]), manifest, fifo, errors), daemon=True
    )
    feeder.start()
    try:
        yield fifo
    finally:
        if feeder.is_alive():
            # the reader is gone (or never came): unblock the writer's open, let it fail
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        feeder.join()
        fifo.unlink(missing_ok=True)
    if errors:
        error = errors[0]
        if isinstance(error, TapeError):
            raise BackupError(
                f"{error.message} The files restored from it cannot be trusted.",
                hint=error.hint or "Restore again from an intact tape.",
            ) from None
        raise error
