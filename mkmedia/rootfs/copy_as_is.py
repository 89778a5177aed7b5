"""COPY_AS_IS: files, globs and whole trees copied verbatim, minus EXCLUDE."""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from mkmedia.rootfs.copy import TreeCopier
from rescue_runtime.errors import MkmediaError


@dataclass
class CopyAsIsResult:
    copied: list[str] = field(default_factory=list)  # paths copied (files, links, dirs)
    excluded: list[str] = field(default_factory=list)  # the top-most excluded paths
    elf_files: list[str] = field(default_factory=list)  # copied ELF files, for the resolver
    warnings: list[str] = field(default_factory=list)


def is_excluded(path: str, exclude: Sequence[str]) -> bool:
    """fnmatch of the absolute host path against EXCLUDE (a match on a directory excludes its
    subtree, since the walk does not descend into it)."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in exclude)


def copy_as_is(
    copier: TreeCopier, patterns: Sequence[str], exclude: Sequence[str]
) -> CopyAsIsResult:
    """Copy every match of `patterns` (globs of absolute paths) into the tree.

    Directories are copied with their whole subtree (symlinks stay symlinks and are not
    followed). Files that cannot be read are collected and raise one MkmediaError naming them
    all, unless EXCLUDE covers them. A pattern matching nothing gives a warning.
    """
    result = CopyAsIsResult()
    errors: list[str] = []
    root = copier.src
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise MkmediaError(
                f"The COPY_AS_IS entry {pattern!r} is not an absolute path.",
                hint="Write it as /path/to/file or /path/with/glob*.",
            )
        matches = sorted(glob.glob(root.host(pattern)))
        if not matches and os.path.lexists(root.host(pattern)):
            matches = [root.host(pattern)]
        if not matches:
            result.warnings.append(f"The COPY_AS_IS entry {pattern} matches nothing.")
            continue
        for host_path in matches:
            path = host_path[len(root.host("")) :] or "/"
            _copy_tree(copier, path, exclude, result, errors)
    if errors:
        shown = "\n".join(errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise MkmediaError(
            f"COPY_AS_IS could not copy {len(errors)} path(s):\n{shown}{more}",
            hint="Make them readable, or add them (or their directories) to EXCLUDE.",
        )
    return result


def _copy_tree(
    copier: TreeCopier,
    path: str,
    exclude: Sequence[str],
    result: CopyAsIsResult,
    errors: list[str],
) -> None:
    if is_excluded(path, exclude):
        result.excluded.append(path)
        return
    host = copier.src.host(path)
    try:
        st = os.lstat(host)
        copier.copy_path(path)
    except (OSError, MkmediaError) as exc:
        errors.append(f"{host}: {getattr(exc, 'message', None) or exc}")
        return
    result.copied.append(path)
    if stat.S_ISREG(st.st_mode):
        if _is_elf(host):
            result.elf_files.append(path)
        return
    if not stat.S_ISDIR(st.st_mode):
        return  # a symlink (copied as such; not followed) or a device node
    try:
        names = sorted(os.listdir(host))
    except OSError as exc:
        errors.append(f"{host}: cannot list the directory ({exc.strerror or exc})")
        return
    for name in names:
        _copy_tree(copier, path.rstrip("/") + "/" + name, exclude, result, errors)


def _is_elf(host: str) -> bool:
    try:
        with open(host, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False
