"""How big the rescue tree is, by part, with its largest files."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any

PARTS = ("programs", "libraries", "kernel modules", "firmware", "python", "other")


def classify(path: str) -> str:
    """The part a file (path inside the tree, symlinks resolved) belongs to."""
    if path.startswith(("/lib/modules/", "/usr/lib/modules/")):
        return "kernel modules"
    if path.startswith(("/lib/firmware/", "/usr/lib/firmware/")):
        return "firmware"
    if fnmatch.fnmatchcase(path, "/usr/lib/python3*") or fnmatch.fnmatchcase(
        path, "/usr/local/lib/python3*"
    ):
        return "python"
    parent = os.path.basename(os.path.dirname(path))
    if parent in ("bin", "sbin"):
        return "programs"
    name = os.path.basename(path)
    if name.endswith(".so") or ".so." in name:
        return "libraries"
    return "other"


@dataclass
class SizeReport:
    total_bytes: int = 0
    total_files: int = 0
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)  # part -> (bytes, files)
    largest: list[tuple[int, str]] = field(default_factory=list)  # (bytes, path), largest first

    def as_dict(self) -> dict[str, Any]:
        """For the JSON build report."""
        return {
            "total_bytes": self.total_bytes,
            "total_files": self.total_files,
            "parts": {k: {"bytes": b, "files": n} for k, (b, n) in self.parts.items()},
            "largest": [{"path": p, "bytes": b} for b, p in self.largest],
        }

    def as_text(self) -> str:
        lines = [f"rescue tree: {_mib(self.total_bytes)} in {self.total_files} files"]
        for part in PARTS:
            b, n = self.parts.get(part, (0, 0))
            lines.append(f"  {part:<15} {_mib(b):>11} {n:>7} files")
        lines.append(f"largest {len(self.largest)} files:")
        lines.extend(f"  {_mib(b):>11}  {p}" for b, p in self.largest)
        return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def size_report(tree: str | os.PathLike[str], *, largest: int = 20) -> SizeReport:
    """Apparent sizes of the regular files (hard links counted once), by part."""
    root = os.path.abspath(os.fspath(tree))
    report = SizeReport(parts={p: (0, 0) for p in PARTS})
    seen: set[tuple[int, int]] = set()
    files: list[tuple[int, str]] = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            host = os.path.join(dirpath, name)
            st = os.lstat(host)
            if not os.path.isfile(host) or os.path.islink(host):
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            path = host[len(root) :]
            part = classify(path)
            b, n = report.parts[part]
            report.parts[part] = (b + st.st_size, n + 1)
            report.total_bytes += st.st_size
            report.total_files += 1
            files.append((st.st_size, path))
    files.sort(key=lambda x: (-x[0], x[1]))
    report.largest = files[:largest]
    return report
