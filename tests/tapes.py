"""Reading tape images in tests (integration and vm tests share it)."""

from __future__ import annotations

from pathlib import Path

from rescue_runtime.tape.base import EndOfMedium
from rescue_runtime.tape.simh import SimhTape


def tape_records(path: Path) -> list[bytes]:
    """Every record of a SIMH image (b"": a filemark) up to its end of medium."""
    tape = SimhTape(path)
    out = []
    try:
        while True:
            out.append(tape.read_record(1 << 24))
    except EndOfMedium:
        return out
    finally:
        tape.close()
