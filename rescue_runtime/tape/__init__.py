"""Tapes: one interface (base.py) over a SIMH `.tap` image (simh.py) and a real drive through
the Linux st driver (st.py); our label (label.py) and the tape layouts (layout.py).

Both backends move records, filemarks and positions the same way, so the code writing an OBDR
tape, verifying it and restoring from it never knows which one it has (`open_tape`).
"""

from __future__ import annotations

from rescue_runtime.errors import ConfigError
from rescue_runtime.tape import simh, st
from rescue_runtime.tape.base import Tape, TapeError
from rescue_runtime.tape.label import Label
from rescue_runtime.tape.layout import read_label


def is_tape_device(path: str) -> bool:
    """A path of the st driver (/dev/nst0, /dev/st0, /dev/tape/by-id/...-nst)."""
    return path.startswith("/dev/")


def open_tape(path: str, *, write: bool = False) -> Tape:
    """The backend for `path`: the st driver for a /dev path, a SIMH image otherwise (a
    block device holding the image, such as a QEMU disk, reads like the file)."""
    if is_tape_device(path) and st.is_st_device(path):
        return st.StTape(path, write=write)
    return simh.SimhTape(path, write=write)


def label_at(path: str) -> Label | None:
    """The label of the tape (or image) `path`: opened, rewound, read, closed."""
    tape = open_tape(path)
    try:
        return read_label(tape)[0]
    finally:
        tape.close()


def check_tape_path(path: str, where: str) -> None:
    """ConfigError unless `path` can name a tape: a /dev path other than the rewinding
    /dev/stN, or an image file NAME.tap."""
    if is_tape_device(path):
        try:
            st.check_non_rewinding(path)
        except TapeError as exc:
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
        return
    if not path.startswith("/") or not path.endswith(".tap"):
        raise ConfigError(
            f"{where} names {path!r}, which is neither a tape drive nor a tape image.",
            hint="Name the non-rewinding drive (/dev/nst0) or an absolute path ending in .tap.",
        )
