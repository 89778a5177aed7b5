"""The SIMH `.tap` tape image: what tests, virtual tape libraries and emulators read.

Each record is framed by its length as a 32-bit little-endian word before and after the data
(odd lengths padded to even); a zero word is a filemark, 0xFFFFFFFF the end of the medium,
0xFFFFFFFE an erase gap (skipped). The top four bits of a length word are the record's class:
0 a good record, 8 a record the drive could not read. A block device holding the image (a
QEMU disk) reads like the file.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from rescue_runtime.tape.base import EndOfMedium, TapeError

FILEMARK = 0x00000000
END_OF_MEDIUM = 0xFFFFFFFF
ERASE_GAP = 0xFFFFFFFE
CLASS_GOOD = 0x0
CLASS_BAD = 0x8
LENGTH_MASK = 0x0FFFFFFF
WORD = struct.Struct("<I")
# The image is padded with zeros after its end-of-medium word to a whole 512-byte sector, so
# that a disk made of it (QEMU rounds a raw image's size to sectors) holds all of it.
SECTOR = 512


class SimhTape:
    """A `.tap` image read or written sequentially like a tape (see the module's text)."""

    def __init__(self, path: str | os.PathLike[str], *, write: bool = False) -> None:
        self.name = os.fspath(path)
        self.writing = write
        self.block_size = 0  # 0: variable records; N: every record N bytes, as st's fixed mode
        self.compression = False  # SIMH images are not compressed; kept for the record
        self._dirty = False  # written since opened: the end-of-medium word goes on at close
        try:
            self._file: BinaryIO = open(self.name, "w+b" if write else "rb")  # noqa: SIM115
        except OSError as exc:
            raise TapeError(
                f"Cannot open the tape image {self.name}: {exc.strerror or exc}.",
                hint="Check the path and that mkmedia may read (and write) it.",
            ) from None

    # -- writing --------------------------------------------------------------------
    def _put(self, data: bytes) -> None:
        if not self.writing:
            raise TapeError(f"The tape image {self.name} is open for reading only.")
        try:
            self._file.write(data)
        except OSError as exc:
            raise EndOfMedium(
                f"Writing the tape image {self.name} failed: {exc.strerror or exc}.",
                hint="Free space on its file system, or write to another place.",
            ) from None
        self._dirty = True

    def write_record(self, data: bytes) -> None:
        if self.block_size and len(data) % self.block_size:
            raise TapeError(
                f"A {len(data)}-byte write to {self.name} in fixed {self.block_size}-byte "
                "block mode: it must be a whole number of blocks."
            )
        pieces = (
            [data[i : i + self.block_size] for i in range(0, len(data), self.block_size)]
            if self.block_size
            else [data]
        )
        for piece in pieces:
            if not piece or len(piece) > LENGTH_MASK:
                raise TapeError(f"A record of {len(piece)} bytes cannot go onto {self.name}.")
            word = WORD.pack(len(piece))
            pad = b"\0" if len(piece) % 2 else b""
            self._put(word + piece + pad + word)

    def write_filemark(self, count: int = 1) -> None:
        self._put(WORD.pack(FILEMARK) * count)

    # -- reading --------------------------------------------------------------------
    def _word(self) -> int | None:
        raw = self._file.read(WORD.size)
        if len(raw) < WORD.size:
            return None
        value: int = WORD.unpack(raw)[0]
        return value

    def _next(self, limit: int | None) -> bytes | None:
        """The next record (b"" for a filemark), None for a data record skipped (limit None)."""
        while True:
            start = self._file.tell()
            word = self._word()
            if word is None or word == END_OF_MEDIUM:
                self._file.seek(start)
                raise EndOfMedium(f"The tape image {self.name} ends at byte {start}.")
            if word == ERASE_GAP:
                continue
            if word == FILEMARK:
                return b""
            kind, length = word >> 28, word & LENGTH_MASK
            if kind not in (CLASS_GOOD, CLASS_BAD):
                raise TapeError(
                    f"The tape image {self.name} is damaged at byte {start}: the word "
                    f"{word:#010x} is neither a record length nor a marker.",
                    hint="The image is not a SIMH .tap file, or it was cut or overwritten.",
                )
            padded = length + (length % 2)
            if kind == CLASS_BAD:
                raise TapeError(
                    f"The tape image {self.name} holds an unreadable record at byte {start}."
                )
            if limit is not None and length > limit:
                raise TapeError(
                    f"The record at byte {start} of {self.name} has {length} bytes, more "
                    f"than the {limit} expected there."
                )
            if limit is None:
                self._file.seek(padded, os.SEEK_CUR)
                data = None
            else:
                data = self._file.read(padded)[:length]
                if len(data) < length:
                    raise EndOfMedium(f"The tape image {self.name} ends inside a record.")
            if self._word() != word:
                raise TapeError(
                    f"The tape image {self.name} is damaged at byte {start}: the record's "
                    "trailing length differs from its leading one.",
                    hint="The image was cut or overwritten; use an intact copy.",
                )
            return data

    def read_record(self, limit: int) -> bytes:
        data = self._next(limit)
        assert data is not None
        return data

    # -- positioning ----------------------------------------------------------------
    def space_filemarks(self, count: int) -> None:
        """Forward past `count` filemarks (MTFSF), or back past -count of them and stop on
        their beginning-of-tape side (MTBSF)."""
        if count >= 0:
            passed = 0
            while passed < count:
                if self._next(None) == b"":
                    passed += 1
            return
        passed = 0
        while passed < -count:
            position = self._file.tell()
            if position < WORD.size:
                raise EndOfMedium(f"Spacing back on {self.name} reached the beginning of tape.")
            self._file.seek(position - WORD.size)
            word = self._word()
            assert word is not None
            if word == FILEMARK:
                passed += 1
                self._file.seek(position - WORD.size)
                continue
            length = word & LENGTH_MASK
            self._file.seek(position - 2 * WORD.size - length - (length % 2))

    def rewind(self) -> None:
        self._file.seek(0)

    def set_block_size(self, size: int) -> None:
        self.block_size = size

    def set_compression(self, on: bool) -> None:
        self.compression = on

    def close(self) -> None:
        """Writing: end of medium after the last thing written, the rest cut off."""
        try:
            if self.writing and self._dirty:
                self._file.write(WORD.pack(END_OF_MEDIUM))
                end = self._file.tell()
                self._file.truncate(end)
                self._file.write(b"\0" * (-end % SECTOR))
                self._file.flush()
                os.fsync(self._file.fileno())
        finally:
            self._file.close()
