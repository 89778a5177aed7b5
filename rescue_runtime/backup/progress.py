"""A simple progress line for backup and restore (standard library; the host may do better).

The bytes come from /proc/<pid>/io of the process that reads the data (tar on backup, zstd on
restore), so nothing sits in the data path to count them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

GiB = 1024**3
MiB = 1024**2

# done bytes, expected total (0: unknown)
ProgressFunc = Callable[[int, int], None]


def read_bytes(pid: int) -> int:
    """Bytes the process has read so far (0 once it is gone or when /proc hides it)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def human(size: float) -> str:
    if size >= GiB:
        return f"{size / GiB:.2f} GiB"
    return f"{size / MiB:.1f} MiB"


class ProgressLine:
    """Rewrites one line on a terminal; on a log or pipe, one line every `every` seconds."""

    def __init__(self, label: str, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.every = every
        self.started = time.monotonic()
        self.last = 0.0
        self.tty = self.stream.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        of = f" of ~{human(total)} ({min(100.0, 100.0 * done / total):.0f}%)" if total else ""
        text = f"  {self.label}: {human(done)}{of}, {rate / MiB:.0f} MiB/s"
        if self.tty:
            self.stream.write(f"\r{text}\033[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
