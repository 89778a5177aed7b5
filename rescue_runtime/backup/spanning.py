"""A backup spread over several media (iso://, larger than ISO_MAX_SIZE): the volume walk.

The first medium holds the manifest, the first volumes and `backup-media.json`, which says
on which further medium (number, marker id) each other volume is. Those media carry the
marker /mkmedia/id-<medium id>v<NNN> and the same backup directory with their volumes.

Restore reads the volumes in order: each one is found (on a medium present, or asked for:
"insert medium N and press Enter"; unattended, every present medium is searched and a missing
one stops with a message naming it), checked (size and sha256 of the sealed manifest) and then
fed by `cat` into a FIFO that the decoders and tar read. Python only holds the FIFO open
between the volumes; the data never passes through it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rescue_runtime.backup import manifest as manifests
from rescue_runtime.backup.manifest import BackupError
from rescue_runtime.errors import CommandError
from rescue_runtime.run import PipelineResult, pipeline

MEDIA_NAME = "backup-media.json"


@dataclass(frozen=True)
class Medium:
    number: int  # 2, 3, ... (the first medium is the one holding the manifest)
    marker_id: str
    volumes: tuple[str, ...]


def volume_marker_id(medium_id: str, number: int) -> str:
    """The marker id of medium `number` of the backup on the rescue medium `medium_id`."""
    return f"{medium_id.upper()}V{number:03d}"


def write_media_file(directory: Path, media: Sequence[Medium]) -> None:
    document: dict[str, object] = {
        "media": [
            {"number": m.number, "marker_id": m.marker_id, "volumes": list(m.volumes)}
            for m in media
        ]
    }
    manifests.write_json_atomic(directory / MEDIA_NAME, document)


def read_media_file(directory: Path) -> list[Medium]:
    """The further media of a spanned backup; empty for a backup on one medium."""
    path = directory / MEDIA_NAME
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text())
        return [
            Medium(int(m["number"]), str(m["marker_id"]), tuple(str(v) for v in m["volumes"]))
            for m in document["media"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(
            f"The list of backup media {path} cannot be read ({exc}).",
            hint="The first backup medium is damaged: make the media again.",
        ) from None


def elsewhere(media: Sequence[Medium]) -> dict[str, Medium]:
    """Volume name -> the medium it is on, for the volumes not on the first medium."""
    return {volume: medium for medium in media for volume in medium.volumes}


class MediumFinder(Protocol):
    """Makes the directory of a further medium reachable (`mkmedia` finds and mounts it)."""

    def medium(self, medium: Medium, total: int) -> contextlib.AbstractContextManager[Path]:
        """The medium's backup directory while the context lasts (of `total` media)."""
        ...


def check_volume(path: Path, record: dict[str, object]) -> None:
    """A volume arriving on a later medium: its size and sha256 before it is fed."""
    if not path.is_file():
        raise BackupError(
            f"The backup volume {record['name']} is not on the medium that should hold it "
            f"({path}); nothing more was restored.",
            hint="Insert the right medium of this backup and run recover again.",
        )
    if path.stat().st_size != record["size"] or manifests.sha256_file(path) != record["sha256"]:
        raise BackupError(
            f"The backup volume {path} does not match its size and sha256 in the manifest: "
            "it is damaged; the restore stopped before reading it.",
            hint="Use an intact copy of this medium (or make the media again) and run "
            "recover again.",
        )


def _open_writer(fifo: Path, consumer: threading.Thread) -> int:
    """Open the FIFO for writing once the consumer has it open for reading (without
    blocking forever when the consumer failed before it got there)."""
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or not consumer.is_alive():
                raise
            time.sleep(0.05)
            continue
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd


def _close(fd: int) -> int:
    if fd >= 0:
        os.close(fd)
    return -1


def walk(
    volumes: Sequence[tuple[str, Callable[[], contextlib.AbstractContextManager[Path]]]],
    commands: Sequence[Sequence[str]],
    *,
    ok_codes: Sequence[Sequence[int]] | None = None,
    on_tick: Callable[[list[int]], None] | None = None,
    what: str,
) -> PipelineResult:
    """Run `commands` reading the volumes one after the other: each (name, reach) gives a
    context in which the volume's path is reachable (and checked); `cat` feeds it."""
    outcome: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="mkmedia-volumes.") as work:
        fifo = Path(work) / "stream"
        os.mkfifo(fifo, 0o600)

        def consume() -> None:
            try:
                outcome["result"] = pipeline(
                    commands, stdin_path=fifo, ok_codes=ok_codes, on_tick=on_tick, what=what
                )
            except BaseException as exc:  # handed to the caller's thread below
                outcome["error"] = exc

        consumer = threading.Thread(target=consume, name="volume-consumer", daemon=True)
        consumer.start()
        writer = -1
        try:
            writer = _open_writer(fifo, consumer)
            for name, reach in volumes:
                with reach() as path:
                    pipeline([["cat", "--", path]], stdout_path=fifo, what=f"reading {name}")
        except BaseException as exc:
            writer = _close(writer)
            consumer.join()
            error = outcome.get("error")
            # cat's broken pipe says less than why the consumer stopped; a volume not found
            # or damaged (the consumer then ends on a short stream) is the cause itself
            if isinstance(error, Exception) and isinstance(exc, CommandError):
                raise error from exc
            raise
        finally:
            _close(writer)  # the end of the stream: the consumer sees EOF
            consumer.join()
    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, BaseException)
        raise error
    result = outcome["result"]
    assert isinstance(result, PipelineResult)
    return result
