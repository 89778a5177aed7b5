"""The cpio `newc` format (the one the kernel unpacks into its rootfs), written by us.

An archive is a sequence of entries: a 110-byte ASCII header ("070701" and thirteen 8-digit hex
fields), the NUL-terminated name padded so that header + name is a multiple of 4 bytes, then
the data padded to a multiple of 4. It ends with an entry named TRAILER!!!.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rescue_runtime.errors import MkmediaError

MAGIC = b"070701"
HEADER_SIZE = 110
TRAILER = "TRAILER!!!"
# newc fields are 32-bit; the kernel refuses names longer than PATH_MAX (NUL included).
MAX_FIELD = 0xFFFFFFFF
PATH_MAX = 4096
CHUNK_SIZE = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int | None: ...


class Progress(Protocol):
    """Called with the total number of archive bytes written so far."""

    def __call__(self, written: int, /) -> object: ...


@dataclass(frozen=True)
class Entry:
    """One archive member, with the values its header will carry.

    `name` is relative to the archive root ("usr/bin/ls"). `size` is the number of data bytes
    stored with this entry: 0 for directories, devices and all but the last link of a
    hard-link group. Data comes from `source` (regular files) or `link_target` (symlinks).
    """

    name: str
    mode: int
    ino: int
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    mtime: int = 0
    size: int = 0
    rdevmajor: int = 0
    rdevminor: int = 0
    source: Path | None = None
    link_target: bytes | None = None

    @property
    def is_hardlink(self) -> bool:
        return stat.S_ISREG(self.mode) and self.nlink > 1


def _pad(length: int) -> int:
    return (4 - length % 4) % 4


def header_bytes(entry: Entry) -> bytes:
    """The header, name and name padding of an entry (the data follows)."""
    name = os.fsencode(entry.name) + b"\0"
    if len(name) > PATH_MAX:
        raise MkmediaError(
            f"The path {entry.name[:80]!r}... is {len(name) - 1} bytes long; the kernel unpacks "
            f"initrd names of at most {PATH_MAX - 1} bytes.",
            hint="Shorten or exclude that path in the rescue tree.",
        )
    fields = (
        entry.ino,
        entry.mode,
        entry.uid,
        entry.gid,
        entry.nlink,
        entry.mtime,
        entry.size,
        0,  # devmajor and devminor: zeroed, the host's device says nothing about the media
        0,
        entry.rdevmajor,
        entry.rdevminor,
        len(name),
        0,  # check: only used by the "070702" crc format
    )
    for value in fields:
        if not 0 <= value <= MAX_FIELD:
            raise MkmediaError(
                f"The file {entry.name!r} cannot be stored in a cpio newc archive: a header "
                f"value ({value}) does not fit in 32 bits (files must be under 4 GiB).",
                hint="Exclude that file from the rescue tree.",
            )
    head = MAGIC + b"".join(b"%08X" % v for v in fields) + name
    return head + b"\0" * _pad(len(head))


def entry_length(entry: Entry) -> int:
    """Bytes this entry takes in the archive (header, name, data and paddings)."""
    head = HEADER_SIZE + len(os.fsencode(entry.name)) + 1
    return head + _pad(head) + entry.size + _pad(entry.size)


TRAILER_ENTRY = Entry(name=TRAILER, mode=0, ino=0, nlink=1)


class CpioWriter:
    """Streams entries into a sink (a file or a compressor), reading file data in chunks."""

    def __init__(
        self, sink: Sink, *, chunk_size: int = CHUNK_SIZE, progress: Progress | None = None
    ) -> None:
        self._sink = sink
        self._progress = progress
        self._buffer = bytearray(chunk_size)
        self.bytes_written = 0
        self.entries = 0

    def _write(self, data: bytes | memoryview) -> None:
        self._sink.write(data)
        self.bytes_written += len(data)

    def add(self, entry: Entry) -> None:
        self._write(header_bytes(entry))
        if entry.size:
            if entry.link_target is not None:
                self._write(entry.link_target)
            elif entry.source is not None:
                self._copy_file(entry)
            else:  # a bug in whoever built the Entry
                raise ValueError(f"entry {entry.name!r} has a size but no data")
            self._write(b"\0" * _pad(entry.size))
        self.entries += 1
        if self._progress is not None:
            self._progress(self.bytes_written)

    def _copy_file(self, entry: Entry) -> None:
        assert entry.source is not None
        remaining = entry.size
        view = memoryview(self._buffer)
        try:
            with open(entry.source, "rb", buffering=0) as handle:
                while remaining:
                    got = handle.readinto(view[: min(remaining, len(view))])
                    if not got:
                        break
                    self._write(view[:got])
                    remaining -= got
                    if self._progress is not None:
                        self._progress(self.bytes_written)
                grew = remaining == 0 and handle.read(1) != b""
        except OSError as exc:
            raise MkmediaError(
                f"Cannot read {entry.source} while packing the initrd: {exc.strerror}.",
                hint="Check the file's permissions, or exclude it from the rescue tree.",
            ) from exc
        if remaining or grew:
            raise MkmediaError(
                f"The file {entry.source} changed size while the initrd was being packed "
                f"(expected {entry.size} bytes).",
                hint="Make sure nothing writes into the rescue tree during the build, then "
                "build again.",
            )

    def finish(self) -> None:
        """Write the trailer entry that ends the archive (not counted in `entries`)."""
        self._write(header_bytes(TRAILER_ENTRY))
        if self._progress is not None:
            self._progress(self.bytes_written)
