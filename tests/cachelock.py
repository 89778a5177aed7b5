"""One builder per cache entry: the tests' caches under /var/tmp are shared by every pytest
process on the machine (two xdist workers, another checkout's run), so an entry is built
under an exclusive flock on a lock file beside it; whoever waited then finds it built."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def locked(directory: Path, key: str) -> Iterator[None]:
    """Hold the lock of cache entry `key` in `directory` (blocks while another holds it).

    The lock file stays (removing it would let a third process lock a different inode);
    the kernel drops the lock when its holder dies, so a killed build never blocks the next."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f".{key}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(
    directory: Path, key: str, cached: Callable[[], T | None], build: Callable[[], T]
) -> T:
    """`cached()` if the entry is there; else build it while holding its lock, unless a
    concurrent builder finished it while this one waited."""
    found = cached()
    if found is not None:
        return found
    with locked(directory, key):
        found = cached()
        return found if found is not None else build()
