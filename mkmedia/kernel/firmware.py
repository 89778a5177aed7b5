"""Find firmware files under /lib/firmware the way the kernel's firmware loader does.

The loader tries, for a name N: updates/VERSION/N, updates/N, VERSION/N, N, each also with
.zst and .xz appended (CONFIG_FW_LOADER_COMPRESS). Symlinks (linux-firmware uses many) are
kept as links, with their targets. Most hosts lack most firmware, so absent files are
listed, never an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mkmedia.kernel.modindex import has_glob

COMPRESSED = ("", ".zst", ".xz")
_MAX_LINKS = 40


@dataclass(frozen=True)
class FirmwareFile:
    """One file (or symlink, when `link` is set) below the firmware root."""

    relpath: str  # relative to the firmware root, as installed in the rescue tree
    source: Path
    size: int
    wanted_by: str
    link: str | None = None  # the symlink's target text


def search_dirs(root: Path, version: str) -> list[Path]:
    return [root / "updates" / version, root / "updates", root / version, root]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _entries(path: Path, root: Path, wanted_by: str) -> list[FirmwareFile]:
    """The file at `path` and, when it is a symlink, the chain of links and the final file."""
    out: list[FirmwareFile] = []
    current = path
    for _ in range(_MAX_LINKS):
        relpath = os.path.relpath(current, root)
        if not current.is_symlink():
            out.append(FirmwareFile(relpath, current, current.stat().st_size, wanted_by))
            return out
        text = os.readlink(current)
        out.append(FirmwareFile(relpath, current, 0, wanted_by, link=text))
        target = Path(os.path.normpath(current.parent / text))
        if not _inside(target, root):
            # A link leaving the firmware tree: copy what it points to under the link's name.
            out[-1] = FirmwareFile(relpath, current, current.stat().st_size, wanted_by)
            return out
        current = target
    return out


def lookup(name: str, root: Path, version: str) -> Path | None:
    """The file the kernel would load for firmware `name`, or None."""
    for directory in search_dirs(root, version):
        for suffix in COMPRESSED:
            candidate = directory / (name + suffix)
            if candidate.exists() and candidate.is_file():
                return candidate
    return None


def _expand(pattern: str, root: Path) -> list[Path]:
    rel = pattern
    if os.path.isabs(pattern):
        rel = os.path.relpath(pattern, root)
    if has_glob(rel):
        matches = sorted(root.glob(rel))
    else:
        matches = [root / rel] if (root / rel).exists() else []
    files: list[Path] = []
    for match in matches:
        if match.is_dir() and not match.is_symlink():
            files.extend(p for p in sorted(match.rglob("*")) if p.is_file() or p.is_symlink())
        else:
            files.append(match)
    return [f for f in files if _inside(Path(os.path.normpath(f)), root)]


def find_firmware(
    requests: Iterable[tuple[str, str]], root: str | os.PathLike[str], version: str
) -> tuple[list[FirmwareFile], list[tuple[str, str]]]:
    """Resolve (firmware name or glob, wanted by) pairs to files present and names missing.

    Names from modules are looked up as the kernel does; names containing glob characters
    (and FIRMWARE entries that are directories) expand below `root`.
    """
    base = Path(root)
    found: dict[str, FirmwareFile] = {}
    missing: list[tuple[str, str]] = []
    for name, wanted_by in requests:
        if has_glob(name) or wanted_by == "FIRMWARE":
            paths = _expand(name, base)
        else:
            hit = lookup(name, base, version)
            paths = [hit] if hit else []
        if not paths:
            if (name, wanted_by) not in missing:
                missing.append((name, wanted_by))
            continue
        for path in paths:
            for entry in _entries(path, base, wanted_by):
                found.setdefault(entry.relpath, entry)
    return sorted(found.values(), key=lambda f: f.relpath), missing
