"""A lock so two mkmedia runs cannot trample each other's work area, layout or output.

The kernel's flock is what locks: it is released when its holder exits, however it exits. The
file's text says who holds it (pid, host, start time), so a busy lock names its holder, and a
lock a killed run left behind is recognised, taken over and said so in the log.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from pathlib import Path
from types import TracebackType

from mkmedia.errors import LockError, MkmediaError
from mkmedia.owner import Owner

log = logging.getLogger("mkmedia.lock")

_RECORD_MAX = 4096


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
