"""The plain-text tables in /etc and /proc: fstab, /proc/mounts, /proc/swaps, crypttab,
mdadm.conf."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field


def _unescape(field_text: str) -> str:
    """fstab and /proc/mounts write space, tab, newline and backslash as octal escapes."""
    return (
        field_text.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def _rows(text: str, columns: int) -> Iterator[list[str]]:
    """The white-space separated fields of each line that is not blank, a comment, or shorter
    than `columns` fields (fstab and crypttab skip such lines as their readers do)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= columns and not parts[0].startswith("#"):
            yield parts


@dataclass
class FstabEntry:
    spec: str  # UUID=..., LABEL=..., PARTUUID=..., /dev/...
    file: str
    vfstype: str
    options: list[str]
    freq: int = 0
    passno: int = 0


def parse_fstab(text: str) -> list[FstabEntry]:
    """fstab(5); /proc/mounts has the same shape."""
    entries = []
    for parts in _rows(text, 3):
        options = parts[3] if len(parts) > 3 else "defaults"
        entries.append(
            FstabEntry(
                spec=_unescape(parts[0]),
                file=_unescape(parts[1]),
                vfstype=parts[2],
                options=[o for o in options.split(",") if o],
                freq=int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 0,
                passno=int(parts[5]) if len(parts) > 5 and parts[5].isdigit() else 0,
            )
        )
    return entries


def parse_proc_swaps(text: str) -> list[str]:
    """/proc/swaps: the active swap device (or file) paths."""
    lines = text.splitlines()
    return [_unescape(line.split()[0]) for line in lines[1:] if line.strip()]


@dataclass
class CrypttabEntry:
    name: str
    device: str  # UUID=..., /dev/...
    key_file: str | None
    options: list[str] = field(default_factory=list)


def parse_crypttab(text: str) -> list[CrypttabEntry]:
    entries = []
    for parts in _rows(text, 2):
        key = parts[2] if len(parts) > 2 else None
        entries.append(
            CrypttabEntry(
                name=parts[0],
                device=parts[1],
                key_file=None if key in (None, "none", "-") else key,
                options=parts[3].split(",") if len(parts) > 3 else [],
            )
        )
    return entries


@dataclass
class MdadmConfArray:
    device: str  # /dev/md0 or /dev/md/name
    values: dict[str, str] = field(default_factory=dict)  # uuid, name, metadata, level, ...


def parse_mdadm_conf(text: str) -> list[MdadmConfArray]:
    """ARRAY lines (with continuation lines that start with white space)."""
    logical: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line[0].isspace() and logical:
            logical[-1] += " " + line.strip()
        else:
            logical.append(line.strip())
    arrays = []
    for line in logical:
        words = shlex.split(line, comments=True)
        if not words or words[0] != "ARRAY" or len(words) < 2:
            continue
        device = words[1]
        values = {}
        for word in words[2:]:
            key, sep, value = word.partition("=")
            if sep:
                values[key.lower()] = value
        arrays.append(MdadmConfArray(device=device, values=values))
    return arrays
