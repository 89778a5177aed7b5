"""A lock so two mkmedia runs cannot trample each other's work area, layout or output."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from rescue_runtime.errors import LockError


def default_lock_path() -> Path:
    override = os.environ.get("MKMEDIA_LOCK_FILE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/run/lock/mkmedia.lock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/mkmedia-{os.getuid()}"
    return Path(runtime) / "mkmedia.lock"


class RunLock:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockError(
                f"Another mkmedia run (pid {holder}) holds the lock {self.path}.",
                hint="Wait for it to finish; two runs at once would overwrite each other's work.",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
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
