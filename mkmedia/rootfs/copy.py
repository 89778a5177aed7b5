"""Copy host paths into the rescue tree, reproducing symlink chains and file metadata.

A path such as /lib/x86_64-linux-gnu/libc.so.6 is copied component by component: a symlink on
the host (/lib -> usr/lib) becomes the same symlink in the tree (relative or absolute, with the
same target text), its target is copied as well, and so on to the real file. Files keep their
mode (setuid/setgid included), owner, group, extended attributes (the file capabilities in
security.capability) and mtime; hard links on the host stay hard links in the tree.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
from pathlib import Path

from mkmedia.rootpaths import RootPaths
from rescue_runtime.errors import MissingError, MkmediaError

TMP_SUFFIX = ".mkmedia-tmp"


class TreeCopier:
    """Copies paths from `source_root` (the host, "/") to the same paths below `tree`."""

    def __init__(self, tree: str | os.PathLike[str], source_root: str | os.PathLike[str] = "/"):
        self.tree = os.path.abspath(os.fspath(tree))
        self.src = RootPaths(source_root)
        self._inodes: dict[tuple[int, int], str] = {}  # host (dev, ino) -> first tree path
        self._done: set[str] = set()  # source paths already materialised
        self.copied_files = 0
        self.copied_bytes = 0

    def dest(self, path: str) -> str:
        """The tree's host path for a path inside the tree."""
        return self.tree + path

    # -- public -------------------------------------------------------------------------------

    def copy_path(self, path: str) -> str:
        """Copy one path (a file, or only the directory itself) with every symlink on its way.

        Returns the real path (inside the source root) the chain ends at. Raises MissingError
        when the path does not exist and MkmediaError when it cannot be read or written.
        """
        if not path.startswith("/"):
            raise MkmediaError(f"The path {path!r} to copy into the rescue tree is not absolute.")
        if self.src.realpath(path) is None:
            raise MissingError(
                f"Cannot copy {self.src.host(path)} into the rescue tree: it does not exist "
                "(or a symlink on its way is dangling).",
                hint="Remove it from the recipe's lists or install what provides it.",
            )
        return self._chain(path, depth=0)

    def ensure_dir(self, path: str, mode: int | None = None) -> None:
        """Make a directory in the tree: as on the host (links, mode, owner) when it exists
        there, else a plain root-owned directory; `mode` overrides the mode."""
        if self.src.realpath(path) is not None and os.path.isdir(self.src.host(path)):
            real = self.copy_path(path)
        else:
            parent = posixpath.dirname(path)
            if parent != path:
                self.ensure_dir(parent)
            real = path
            target = self.dest(path)
            if not os.path.lexists(target):
                os.mkdir(target, 0o755)
            elif not os.path.isdir(target):
                raise MkmediaError(f"{target} exists in the rescue tree but is not a directory.")
        if mode is not None:
            os.chmod(self.dest(real), mode)

    # -- the chain walk -----------------------------------------------------------------------

    def _chain(self, path: str, depth: int) -> str:
        if depth > 40:
            raise MkmediaError(f"Too many levels of symlinks in {self.src.host(path)}.")
        cur = "/"
        names = [n for n in path.split("/") if n not in ("", ".")]
        for i, name in enumerate(names):
            if name == "..":
                cur = posixpath.dirname(cur)
                continue
            cand = posixpath.join(cur, name)
            target = self.src.link_target(cand)
            if target is not None:
                self._symlink(cand, target)
                base = "/" if target.startswith("/") else cur
                cur = self._chain(posixpath.join(base, target), depth + 1)
                continue
            last = i == len(names) - 1
            if last:
                self._materialise(cand)
            else:
                self._directory(cand)
            cur = cand
        return cur

    def _directory(self, path: str) -> None:
        """Create a directory of the source (whose parents are real) in the tree."""
        if path in self._done:
            return
        host = self.src.host(path)
        st = _lstat(host)
        dst = self.dest(path)
        if os.path.islink(dst) or (os.path.lexists(dst) and not os.path.isdir(dst)):
            raise MkmediaError(
                f"{dst} in the rescue tree is not a directory, but {host} is one on the host.",
                hint="Remove whatever created it (COPY_AS_IS or a hook) or start a fresh tree.",
            )
        if not os.path.isdir(dst):
            os.mkdir(dst, 0o700)
            _apply_metadata(host, dst, st)
        self._done.add(path)

    def _symlink(self, path: str, target: str) -> None:
        if path in self._done:
            return
        dst = self.dest(path)  # its parent was created by the walk that met it
        if os.path.islink(dst):
            if os.readlink(dst) != target:
                _replace_symlink(dst, target)
        elif os.path.lexists(dst):
            kind = "directory" if os.path.isdir(dst) else "file"
            raise MkmediaError(
                f"{dst} in the rescue tree is a {kind}, but {self.src.host(path)} is a symlink "
                f"to {target} on the host.",
                hint="Something created it before the symlink was copied; remove it.",
            )
        else:
            os.symlink(target, dst)
        st = _lstat(self.src.host(path))
        os.lchown(dst, st.st_uid, st.st_gid)
        self._done.add(path)

    def _materialise(self, path: str) -> None:
        """Copy the final, non-symlink component: a file, a directory (itself only) or a node."""
        if path in self._done:
            return
        host = self.src.host(path)
        st = _lstat(host)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            self._directory(path)
            return
        dst = self.dest(path)
        if os.path.isdir(dst) and not os.path.islink(dst):
            raise MkmediaError(f"{dst} is a directory in the rescue tree; {host} is not.")
        if stat.S_ISREG(mode):
            self._file(path, host, dst, st)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            tmp = dst + TMP_SUFFIX
            _unlink_quiet(tmp)
            if stat.S_ISFIFO(mode):
                os.mkfifo(tmp)
            else:
                os.mknod(tmp, mode, st.st_rdev)
            _apply_metadata(host, tmp, st)
            os.replace(tmp, dst)
        else:
            raise MkmediaError(
                f"Cannot copy {host} into the rescue tree: it is a socket (or another special "
                "file that cannot be copied).",
                hint="Add it (or its directory) to EXCLUDE.",
            )
        self._done.add(path)

    def _file(self, path: str, host: str, dst: str, st: os.stat_result) -> None:
        tmp = dst + TMP_SUFFIX
        _unlink_quiet(tmp)
        key = (st.st_dev, st.st_ino)
        first = self._inodes.get(key) if st.st_nlink > 1 else None
        if first is not None and first != path and os.path.exists(self.dest(first)):
            os.link(self.dest(first), tmp)  # a hard link on the host stays one in the tree
            os.replace(tmp, dst)
            return
        try:
            shutil.copyfile(host, tmp, follow_symlinks=False)
        except OSError as exc:
            _unlink_quiet(tmp)
            raise MkmediaError(
                f"Cannot copy {host} into the rescue tree: {exc.strerror or exc}.",
                hint="Make it readable, or add it to EXCLUDE if the rescue system does not "
                "need it.",
            ) from exc
        _apply_metadata(host, tmp, st)
        os.replace(tmp, dst)
        if st.st_nlink > 1:
            self._inodes.setdefault(key, path)
        self.copied_files += 1
        self.copied_bytes += st.st_size


def _lstat(host: str) -> os.stat_result:
    try:
        return os.lstat(host)
    except OSError as exc:
        raise MkmediaError(f"Cannot read {host}: {exc.strerror or exc}.") from exc


def _unlink_quiet(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _replace_symlink(dst: str, target: str) -> None:
    tmp = dst + TMP_SUFFIX
    _unlink_quiet(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, dst)


def _apply_metadata(host: str, dst: str, st: os.stat_result) -> None:
    """Owner, then mode (chown clears setuid bits), then xattrs (chown clears capabilities),
    then times."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    copy_xattrs(host, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_xattrs(src: str, dst: str) -> None:
    """Copy every extended attribute; security.capability must not be lost silently."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        try:
            value = os.getxattr(src, name, follow_symlinks=False)
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError as exc:
            if name == "security.selinux":
                continue  # the rescue system does not enforce SELinux labels
            raise MkmediaError(
                f"Cannot copy the extended attribute {name} of {src} to {dst}: "
                f"{exc.strerror or exc}.",
                hint="Build the rescue tree on a file system with extended attributes "
                "(ext4, xfs, tmpfs).",
            ) from exc


def tree_path(tree: str | os.PathLike[str], path: str) -> Path:
    """The host path of `path` inside `tree`."""
    return Path(os.fspath(tree) + path)
