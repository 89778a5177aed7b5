"""What every tape backend provides, and the errors tapes raise."""

from __future__ import annotations

from typing import Protocol

from rescue_runtime.errors import MkmediaError


class TapeError(MkmediaError):
    """A tape cannot be read or written (I/O error, end of medium, a damaged image)."""


class EndOfMedium(TapeError):
    """Reading or spacing ran past the recorded data (end of medium, blank tape)."""


class Tape(Protocol):
    """A sequential tape. Records are written and read one at a time; a filemark reads as
    an empty record (b""); reading past the end of the data raises EndOfMedium."""

    name: str

    def write_record(self, data: bytes) -> None: ...
    def write_filemark(self, count: int = 1) -> None: ...
    def read_record(self, limit: int) -> bytes: ...
    def space_filemarks(self, count: int) -> None: ...
    def rewind(self) -> None: ...
    def set_block_size(self, size: int) -> None: ...
    def set_compression(self, on: bool) -> None: ...
    def close(self) -> None: ...
