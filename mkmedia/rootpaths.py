"""Paths inside a root directory (the host, or a rescue tree) resolved as `chroot ROOT` would,
and the one program lookup of the builder (PATH rules of rescue_runtime.run.which, inside a root).
"""

from __future__ import annotations

import errno
import glob
import os
import posixpath
from collections.abc import Sequence

from rescue_runtime.run import which as which_in

MAX_SYMLINKS = 40  # as the kernel's limit for one path walk


class _Missing(Exception):
    pass


class RootPaths:
    """Resolve paths inside a root directory as `chroot ROOT` would, with caches.

    Paths handed in and out are absolute paths inside the root ("/usr/lib/..."); `host()` gives
    the path on the real file system.
    """

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._prefix = "" if self.root == "/" else self.root
        self._links: dict[str, str | None] = {}  # real path -> link target, None: not a link
        self._resolved: dict[str, tuple[str, tuple[str, ...]] | None] = {}
        self._listing: dict[str, frozenset[str]] = {}

    def host(self, path: str) -> str:
        return self._prefix + path

    def _readlink(self, path: str) -> str | None:
        """Target of `path` (whose parent is already real) or None; raises _Missing."""
        try:
            return self._links[path]
        except KeyError:
            pass
        try:
            target: str | None = os.readlink(self.host(path))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                target = None
            else:
                raise _Missing(path) from exc
        self._links[path] = target
        return target

    def _walk(self, path: str, links: list[str], budget: list[int]) -> str:
        cur = "/"
        for name in path.split("/"):
            if name in ("", "."):
                continue
            if name == "..":
                cur = posixpath.dirname(cur)
                continue
            cand = posixpath.join(cur, name)
            target = self._readlink(cand)
            if target is None:
                cur = cand
                continue
            budget[0] -= 1
            if budget[0] < 0:
                raise _Missing(cand)
            links.append(cand)
            base = "/" if target.startswith("/") else cur
            cur = self._walk(posixpath.join(base, target), links, budget)
        return cur

    def resolve(self, path: str) -> tuple[str, tuple[str, ...]] | None:
        """(real path, symlinks met in order) for an existing path, or None."""
        try:
            return self._resolved[path]
        except KeyError:
            pass
        links: list[str] = []
        result: tuple[str, tuple[str, ...]] | None
        try:
            real = self._walk(path, links, [MAX_SYMLINKS])
            if real != "/" and self._readlink(real) is not None:  # pragma: no cover
                raise _Missing(real)
            result = (real, tuple(links))
        except _Missing:
            result = None
        self._resolved[path] = result
        return result

    def realpath(self, path: str) -> str | None:
        found = self.resolve(path)
        return None if found is None else found[0]

    def link_target(self, path: str) -> str | None:
        """The target text of a symlink whose parent directories are real paths."""
        try:
            return self._readlink(path)
        except _Missing:
            return None

    def listdir(self, directory: str) -> frozenset[str]:
        """Names in a directory (resolved inside root); empty when it does not exist."""
        real = self.realpath(directory)
        if real is None:
            return frozenset()
        try:
            return self._listing[real]
        except KeyError:
            pass
        try:
            names = frozenset(os.listdir(self.host(real)))
        except OSError:
            names = frozenset()
        self._listing[real] = names
        return names

    def exists(self, path: str) -> bool:
        directory, name = posixpath.split(path)
        return name in self.listdir(directory) and self.resolve(path) is not None

    def glob(self, pattern: str) -> list[str]:
        """Glob inside root; the results are paths inside root."""
        found = glob.glob(self.host(pattern))
        n = len(self._prefix)
        return sorted(p[n:] or "/" for p in found)

    def is_executable(self, path: str) -> bool:
        """True for a path inside root that resolves to an executable regular file."""
        real = self.realpath(path)
        if real is None:
            return False
        host = self.host(real)
        return os.path.isfile(host) and os.access(host, os.X_OK)

    def which(self, program: str, dirs: Sequence[str]) -> str | None:
        """`program` looked up in `dirs` inside root (or an absolute path), as
        rescue_runtime.run.which looks it up on the host: the path inside root, or None."""
        return which_in(program, dirs=dirs, executable=self.is_executable)
