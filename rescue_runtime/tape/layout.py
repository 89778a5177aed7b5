"""What mkmedia puts on a tape, in which records, and how it is read back.

From the beginning of the tape:

    obdr:   20 records of 512 bytes (our label in the first, zeros after: the 10 KiB an OBDR
            drive skips), the rescue ISO in 2048-byte records, a filemark;
    plain:  our label (one 512-byte record), a filemark;
    then, with a backup: its manifest (JSON, 512-byte records, padded with spaces), a
            filemark, the backup stream (tar | zstd, as BACKUP=NETFS makes it) in records of
            the configured size (the last padded with zeros: the manifest has its size), two
            filemarks; without one: a second filemark (the end of the data).

Compression is off for the label, the ISO and the manifest (an OBDR drive reads the ISO as a
CD), on for the backup stream as far as the drive allows. The backup always starts after the
first filemark, so a reader rewinds, reads the label, spaces one filemark forward and reads
the manifest, with no regard for the tape's kind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rescue_runtime.errors import ConfigError
from rescue_runtime.tape.base import EndOfMedium, Tape, TapeError
from rescue_runtime.tape.label import RECORD_SIZE, Label, parse

HEADER_RECORDS = 20
HEADER_SIZE = 512
ISO_BLOCK = 2048
MANIFEST_BLOCK = 512
DEFAULT_BLOCK_SIZE = 64 * 1024
MAX_BLOCK_SIZE = 16 * 1024 * 1024
ProgressFunc = Callable[[int, int], None]


def check_block_size(size: int, where: str = "TAPE_BLOCK_SIZE") -> None:
    if size < MANIFEST_BLOCK or size > MAX_BLOCK_SIZE or size % MANIFEST_BLOCK:
        raise ConfigError(
            f"{where}={size} is not a usable tape record size.",
            hint=f"Use a multiple of 512 from 512 to {MAX_BLOCK_SIZE} (the default is "
            f"{DEFAULT_BLOCK_SIZE}).",
        )


@dataclass(frozen=True)
class Backup:
    """A finished backup to put onto the tape: its manifest and its one volume."""

    manifest: dict[str, object]
    volume: Path

    @property
    def size(self) -> int:
        return int(self.manifest["volumes"][0]["size"])  # type: ignore[index]

    @property
    def sha256(self) -> str:
        return str(self.manifest["volumes"][0]["sha256"])  # type: ignore[index]


@dataclass
class Writer:
    """Writes records and counts them, so a failure says how far the tape got."""

    tape: Tape
    part: str = "the label"
    records: int = 0  # records written so far, all parts
    filemarks: int = 0
    written: int = 0  # bytes
    parts: list[str] = field(default_factory=list)  # parts finished

    def start(self, part: str) -> None:
        self.part = part

    def finish(self) -> None:
        self.parts.append(self.part)

    def where(self) -> str:
        done = ", ".join(self.parts) or "nothing"
        return (
            f"{self.records} records and {self.filemarks} filemarks ({self.written} bytes) went "
            f"onto {self.tape.name}; complete: {done}; cut off in {self.part}"
        )

    def _do(self, action: Callable[[], None]) -> None:
        try:
            action()
        except TapeError as exc:
            raise type(exc)(
                f"{exc.message} {self.where()}. The tape is incomplete and not usable.",
                hint=exc.hint or "Use another tape (or free space for an image) and run again.",
            ) from None

    def record(self, data: bytes) -> None:
        self._do(lambda: self.tape.write_record(data))
        self.records += 1
        self.written += len(data)

    def filemark(self, count: int = 1) -> None:
        self._do(lambda: self.tape.write_filemark(count))
        self.filemarks += count

    def mode(self, block_size: int, compression: bool) -> None:
        self._do(lambda: self.tape.set_block_size(block_size))
        self._do(lambda: self.tape.set_compression(compression))


def chunks(source: BinaryIO, size: int, *, pad: bytes = b"\0") -> Iterator[bytes]:
    """`source` in pieces of `size` bytes, the last one padded with `pad`."""
    while piece := source.read(size):
        yield piece.ljust(size, pad)


def iso_records(iso: Path) -> int:
    size = iso.stat().st_size
    if size % ISO_BLOCK:
        raise TapeError(
            f"The ISO {iso} has {size} bytes, not a whole number of 2048-byte blocks, so it "
            "cannot go onto an OBDR tape unchanged."
        )
    return size // ISO_BLOCK


def write_obdr(
    tape: Tape,
    label: Label,
    iso: Path,
    backup: Backup | None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: ProgressFunc | None = None,
) -> Writer:
    """The whole OBDR tape, from its beginning (see the module's text)."""
    iso_records(iso)
    out = Writer(tape)
    out._do(tape.rewind)
    out.mode(HEADER_SIZE, compression=False)
    out.start("the 10 KiB header")
    out.record(label.record())
    for _ in range(HEADER_RECORDS - 1):
        out.record(bytes(HEADER_SIZE))
    out.finish()
    out.start("the ISO")
    out.mode(ISO_BLOCK, compression=False)
    with open(iso, "rb") as f:
        for piece in chunks(f, ISO_BLOCK):
            out.record(piece)
    out.filemark()
    out.finish()
    _write_data(out, backup, block_size, progress)
    return out


def write_plain(
    tape: Tape,
    label: Label,
    backup: Backup | None,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: ProgressFunc | None = None,
) -> Writer:
    """A tape with our label and the backup (or, without one, the label alone: `mkmedia
    format --tape`)."""
    out = Writer(tape)
    out._do(tape.rewind)
    out.mode(RECORD_SIZE, compression=False)
    out.start("the label")
    out.record(label.record())
    out.filemark()
    out.finish()
    _write_data(out, backup, block_size, progress)
    return out


def _write_data(
    out: Writer, backup: Backup | None, block_size: int, progress: ProgressFunc | None
) -> None:
    if backup is None:
        out.start("the end-of-data filemark")
        out.filemark()
        out.finish()
        return
    check_block_size(block_size)
    out.start("the backup manifest")
    out.mode(MANIFEST_BLOCK, compression=False)
    text = json.dumps(backup.manifest, sort_keys=True).encode()
    for i in range(0, len(text), MANIFEST_BLOCK):
        out.record(text[i : i + MANIFEST_BLOCK].ljust(MANIFEST_BLOCK, b" "))
    out.filemark()
    out.finish()
    out.start("the backup stream")
    out.mode(block_size, compression=True)
    done = 0
    with open(backup.volume, "rb") as f:
        for piece in chunks(f, block_size):
            out.record(piece)
            done = min(done + block_size, backup.size)
            if progress is not None:
                progress(done, backup.size)
    out.filemark(2)
    out.finish()


# -- reading ----------------------------------------------------------------------------
def read_label(tape: Tape) -> tuple[Label | None, bytes | None]:
    """Rewind and read the first record: (our label or None, the record; None: blank)."""
    tape.rewind()
    tape.set_block_size(0)
    try:
        first = tape.read_record(MAX_BLOCK_SIZE)
    except EndOfMedium:
        return None, None
    return parse(first, tape.name), first


def foreign_content(tape: Tape) -> str | None:
    """None when the tape may be overwritten (blank, or ours); otherwise what it holds."""
    label, first = read_label(tape)
    if first is None or label is not None:
        return None
    if first == b"":
        return "it starts with a filemark (another program's data)"
    ascii_ = first[:80].decode("ascii", "replace")
    if first.startswith(b"VOL1"):
        return f"an ANSI/IBM volume label ({ascii_.strip()[:40]!r})"
    return f"a first record of {len(first)} bytes that is not a mkmedia label"


def read_until_filemark(tape: Tape, limit: int) -> Iterator[bytes]:
    while record := tape.read_record(limit):
        yield record


@dataclass(frozen=True)
class OnTape:
    """A tape positioned at the start of its backup stream."""

    label: Label
    manifest: dict[str, object]


def find_backup(tape: Tape) -> tuple[Label, OnTape | None]:
    """Rewind, read the label, space past the first filemark and read the manifest; with a
    backup the tape is then at its stream (None: the tape holds no backup)."""
    label, first = read_label(tape)
    if label is None:
        what = "is blank" if first is None else "carries no mkmedia label"
        raise TapeError(
            f"The tape {tape.name} {what}, so it holds nothing mkmedia wrote.",
            hint="Load the tape mkmedia wrote (the rescue media's or the backup's).",
        )
    tape.space_filemarks(1)
    try:
        text = b"".join(read_until_filemark(tape, MANIFEST_BLOCK))
    except EndOfMedium:
        text = b""
    if not text.strip():
        return label, None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise TapeError(f"The backup manifest on {tape.name} cannot be read ({exc}).") from None
    return label, OnTape(label, manifest)


def open_backup(tape: Tape) -> OnTape:
    """find_backup(), refusing a tape without a backup."""
    label, on_tape = find_backup(tape)
    if on_tape is None:
        raise TapeError(
            f"The tape {tape.name} ({label.kind}, host {label.host or 'none'}) holds no backup.",
            hint="Write one with `mkmedia mkbackup` and BACKUP_URL=tape://...",
        )
    return on_tape


def stream_backup(
    tape: Tape,
    on_tape: OnTape,
    write: Callable[[bytes], object],
    *,
    progress: ProgressFunc | None = None,
) -> str:
    """Read the backup stream (the tape at its start: open_backup) to its filemark, hand
    its bytes to `write` (the padding of the last record left out) and check its size and
    sha256 against the manifest; returns the sha256."""
    volume = on_tape.manifest["volumes"][0]  # type: ignore[index]
    size, expected = int(volume["size"]), str(volume["sha256"])
    limit = max(on_tape.label.block_size, MANIFEST_BLOCK)
    digest = hashlib.sha256()
    done = 0
    try:
        for record in read_until_filemark(tape, limit):
            piece = record[: max(0, size - done)]
            if record[len(piece) :].strip(b"\0"):
                raise TapeError(f"The backup stream on {tape.name} runs past its size {size}.")
            if piece:
                digest.update(piece)
                write(piece)
                done += len(piece)
                if progress is not None:
                    progress(done, size)
    except EndOfMedium:
        pass  # checked below: a cut tape is short
    if done != size:
        raise TapeError(
            f"The backup stream on {tape.name} ends after {done} of its {size} bytes: the "
            "tape is incomplete.",
            hint="Use an intact tape, or another copy of the backup.",
        )
    if digest.hexdigest() != expected:
        raise TapeError(
            f"The backup stream on {tape.name} does not match the sha256 in its manifest: "
            "it is damaged.",
            hint="Use an intact tape, or another copy of the backup.",
        )
    return expected
