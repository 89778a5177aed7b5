"""Small files the tests lay out: one file, or a tree of them, parents made as needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_file(path: Path, text: str, *, mode: int | None = None) -> Path:
    """`text` written to `path` (its parents made), chmod'ed to `mode` when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def write_files(root: Path, files: Mapping[str, str]) -> Path:
    """Each relative path of `files` written below `root` with its text, in order; root."""
    for name, text in files.items():
        write_file(root / name, text)
    return root
