"""A lock so two mkmedia runs cannot trample each other's work area, layout or output.

The kernel's flock is what locks: it is released when its holder exits, however it exits. The
file's text is the holder's owner record (pid, host, start time), so a busy lock names its
holder, and a lock a killed run left behind is recognised, taken over and said so in the log.
The same record in each build directory lets a later run remove what a dead run left there:
its owner is dead when its pid is gone, or belongs to another process now (the kernel's start
time of that pid differs), or the machine has rebooted since (boot id).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rescue_runtime.errors import LockError, MkmediaError

log = logging.getLogger("mkmedia.lock")

_RECORD_MAX = 4096
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


def default_lock_path() -> Path:
    override = os.environ.get("MKMEDIA_LOCK_FILE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/lock/mkmedia.lock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/mkmedia-{os.getuid()}"
    return Path(runtime) / "mkmedia.lock"


def _record(fd: int) -> Owner | None:
    return Owner.parse(os.pread(fd, _RECORD_MAX, 0).decode("utf-8", errors="replace"))


class RunLock:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()
        self._fd: int | None = None

    def _open(self) -> int:
        problem = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NONBLOCK: a FIFO planted in the (world-writable) lock directory must not hang.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            problem = exc.strerror
            if isinstance(exc, FileExistsError):  # from mkdir: something else is in the way
                problem = f"{self.path.parent} exists and is not a directory"
            elif exc.errno == errno.ELOOP:  # O_NOFOLLOW: in /run/lock anyone may plant a link
                problem = "it is a symbolic link, which mkmedia does not follow"
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            problem = "it is not a regular file"
        raise MkmediaError(
            f"Cannot open the lock file {self.path}: {problem}.",
            hint="Point MKMEDIA_LOCK_FILE at a file in a directory mkmedia can write "
            "(default /run/lock/mkmedia.lock as root).",
        )

    def acquire(self) -> None:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _record(fd)
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                # A holder that just took the lock over may not have written its record yet.
                who = holder.describe() if holder and holder.alive() else "just starting"
                raise LockError(
                    f"Another mkmedia run ({who}) holds the lock {self.path}.",
                    hint="Wait for it to finish; two runs at once would overwrite each other's "
                    "work.",
                ) from None
            raise MkmediaError(
                f"Cannot lock {self.path}: {exc.strerror}.",
                hint="Put MKMEDIA_LOCK_FILE on a local file system (flock must work there).",
            ) from exc
        # The flock is ours: any record in the file was left by a run that did not release it.
        previous = _record(fd)
        if previous is not None:
            state = "no longer running" if not previous.alive() else "not holding it any more"
            log.warning(
                "took over the lock %s left by mkmedia %s (%s)",
                self.path,
                previous.describe(),
                state,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, Owner.current().to_text().encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
