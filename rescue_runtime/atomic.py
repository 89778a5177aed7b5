"""Atomic writes: a result appears whole under its name, or not at all.

Every writer of a result goes through here: it gets a temporary name beside the destination
(same directory, so the rename cannot cross file systems), fills it, and the rename happens
only when its block completes. Any exception, KeyboardInterrupt included, removes the
temporary and leaves the old file as it was. Temporary names end in `.partial`, so a later
run can recognise leftovers of a killed one (`.<name>.<pid>.<n>.partial`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

PARTIAL_SUFFIX = ".partial"
_counter = itertools.count()


def partial_path(dest: Path) -> Path:
    """A fresh temporary name beside `dest`, unique within this process."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{next(_counter)}{PARTIAL_SUFFIX}")


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file or directory to disk; file systems that cannot (EINVAL) are let be."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP: nothing to flush there
            raise
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Remove a temporary: a file, a symlink or a whole directory; absent is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(
    dest: str | os.PathLike[str], *, durable: bool = True, mode: int | None = None
) -> Iterator[Path]:
    """Yield a temporary path (not yet created) beside `dest`; the caller (or a tool it runs)
    creates a file, symlink or directory there. When the block completes the temporary is
    renamed onto `dest` (with `mode` applied first); on any exception it is removed.
    `durable` fsyncs the file before and the directory after the rename — off for files
    inside a build tree, where a crash loses the whole tree anyway."""
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(target)
    remove(tmp)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        if durable and tmp.is_file() and not tmp.is_symlink():
            fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        remove(tmp)
        raise
    if durable:
        fsync_path(target.parent)


@overload
def atomic_open(
    dest: str | os.PathLike[str],
    binary: Literal[True] = True,
    *,
    mode: int | None = None,
    durable: bool = True,
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
@overload
def atomic_open(
    dest: str | os.PathLike[str],
    binary: Literal[False],
    *,
    mode: int | None = None,
    durable: bool = True,
) -> contextlib.AbstractContextManager[IO[str]]: ...
def atomic_open(
    dest: str | os.PathLike[str],
    binary: bool = True,
    *,
    mode: int | None = None,
    durable: bool = True,
) -> contextlib.AbstractContextManager[IO[bytes]] | contextlib.AbstractContextManager[IO[str]]:
    """An open file (bytes, or UTF-8 text with `binary=False`) under a temporary name beside
    `dest`, renamed onto it when the block completes. `mode` sets the permissions (default:
    0666 less the umask, as open() gives)."""
    return _atomic_open(dest, binary, mode, durable)


@contextlib.contextmanager
def _atomic_open(
    dest: str | os.PathLike[str], binary: bool, mode: int | None, durable: bool
) -> Iterator[IO[Any]]:
    with (
        atomic_path(dest, durable=durable, mode=mode) as tmp,
        open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8") as handle,
    ):
        yield handle


def write_bytes(
    dest: str | os.PathLike[str], data: bytes, *, mode: int | None = None, durable: bool = True
) -> None:
    with atomic_open(dest, mode=mode, durable=durable) as handle:
        handle.write(data)


def write_text(
    dest: str | os.PathLike[str], text: str, *, mode: int | None = None, durable: bool = True
) -> None:
    with atomic_open(dest, False, mode=mode, durable=durable) as handle:
        handle.write(text)


def copy_file(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    mode: int | None = None,
    durable: bool = True,
) -> None:
    """Copy the contents of `source` (not its metadata) onto `dest` atomically."""
    with atomic_path(dest, durable=durable, mode=mode) as tmp:
        shutil.copyfile(source, tmp)
