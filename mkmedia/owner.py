"""Which process owns a lock file or a build directory, and whether it still runs.

A run writes its owner record (pid, host, start time) into the lock file and into its build
directory. A later run reads it to say who holds the lock, and to recognise what a run that
died hard (SIGKILL, power loss) left behind: its pid is gone, or now belongs to another process
(the kernel's start time of that pid differs), or the machine has rebooted since (boot id).
"""

from __future__ import annotations

import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot (/proc/PID/stat field 22); None when
    no such process runs."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def host_name() -> str:
    return socket.gethostname() or "localhost"


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str | None = None
    started: str | None = None  # UTC, ISO 8601: for people
    ticks: int | None = None  # the process's start time since boot: tells a reused pid apart
    boot: str | None = None  # the kernel's boot id: tells a previous boot apart

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(
            pid=pid,
            host=host_name(),
            started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            ticks=process_start_ticks(pid),
            boot=_read(BOOT_ID),
        )

    def to_text(self) -> str:
        fields = {
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "ticks": self.ticks,
            "boot": self.boot,
        }
        return "".join(f"{k}={v}\n" for k, v in fields.items() if v is not None)

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """Read a record written by to_text() (or a bare pid, as older versions wrote);
        None when the text names no pid (empty: released cleanly)."""
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
            elif line.strip():
                values.setdefault("pid", line.strip())
        pid = values.get("pid", "")
        if not pid.isdigit() or int(pid) <= 0:
            return None
        ticks = values.get("ticks", "")
        return cls(
            pid=int(pid),
            host=values.get("host"),
            started=values.get("started"),
            ticks=int(ticks) if ticks.isdigit() else None,
            boot=values.get("boot"),
        )

    def alive(self) -> bool:
        """Whether the owner may still run. Another host's process cannot be checked from here,
        so it counts as alive: only what is certainly dead may be taken over or removed."""
        if self.host is not None and self.host != host_name():
            return True
        if self.boot is not None and self.boot != _read(BOOT_ID):
            return False
        ticks = process_start_ticks(self.pid)
        if ticks is None:
            return False
        return self.ticks is None or ticks == self.ticks

    def describe(self) -> str:
        text = f"pid {self.pid}"
        if self.host:
            text += f" on {self.host}"
        if self.started:
            text += f", started {self.started}"
        return text


def read_record(path: Path, limit: int = 4096) -> Owner | None:
    """The owner record in a file; None when there is none. Opened without following a link
    and without blocking: under a world-writable TMPDIR anyone may plant a link or a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return Owner.parse(os.read(fd, limit).decode("utf-8", errors="replace"))
    finally:
        os.close(fd)
