"""btrfs-progs: `subvolume list -p -u`, `subvolume get-default`, `filesystem df -b`,
`filesystem show --raw`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rescue_runtime.layout.model import Subvolume
from rescue_runtime.layout.parse.common import ParseError


def parse_subvolume_list(text: str) -> list[Subvolume]:
    subvols = []
    for line in text.splitlines():
        if not line.strip():
            continue
        # "ID 258 gen 7 parent 256 top level 256 uuid ... path @/var-lib": path is last and
        # may contain spaces, so split it off first.
        head, sep, path = line.partition(" path ")
        if not sep:
            raise ParseError("btrfs subvolume list", f"no path in line {line!r}")
        words = head.split()
        values: dict[str, str] = {}
        i = 0
        while i < len(words) - 1:
            if words[i] == "top" and words[i + 1] == "level" and i + 2 < len(words):
                values["top level"] = words[i + 2]
                i += 3
            else:
                values[words[i]] = words[i + 1]
                i += 2
        if "ID" not in values:
            raise ParseError("btrfs subvolume list", f"no ID in line {line!r}")
        parent = values.get("parent")
        top = values.get("top level")
        uuid = values.get("uuid")
        subvols.append(
            Subvolume(
                id=int(values["ID"]),
                path=path.removeprefix("<FS_TREE>/"),
                parent=int(parent) if parent else None,
                top_level=int(top) if top else None,
                uuid=None if uuid in (None, "-") else uuid,
            )
        )
    return subvols


def parse_get_default(text: str) -> tuple[int, str | None]:
    """ "ID 5 (FS_TREE)" or "ID 256 gen 7 top level 5 path @" -> (id, path or None)."""
    m = re.search(r"ID (\d+)", text)
    if not m:
        raise ParseError("btrfs subvolume get-default", f"no ID in {text.strip()!r}")
    path = text.partition(" path ")[2].strip() or None
    return int(m.group(1)), path


def parse_df(text: str) -> dict[str, str]:
    """ "Data, single: total=..." -> {"data": "single", "metadata": "dup", "system": "dup"}."""
    profiles: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(Data|Metadata|System|Data\+Metadata), ([A-Za-z0-9]+):", line)
        if m:
            profiles[m.group(1).lower()] = m.group(2).lower()
    return profiles


@dataclass
class BtrfsShow:
    label: str | None
    uuid: str
    devices: list[str] = field(default_factory=list)
    device_sizes: dict[str, int] = field(default_factory=dict)


def parse_show(text: str) -> list[BtrfsShow]:
    found: list[BtrfsShow] = []
    for line in text.splitlines():
        m = re.match(r"Label: (?:'(.*)'|none)\s+uuid: ([0-9a-f-]+)", line.strip())
        if m:
            found.append(BtrfsShow(label=m.group(1), uuid=m.group(2)))
            continue
        m = re.match(r"\s*devid\s+\d+\s+size\s+(\d+)\S*\s+used\s+\S+\s+path\s+(\S+)", line)
        if m and found:
            found[-1].devices.append(m.group(2))
            found[-1].device_sizes[m.group(2)] = int(m.group(1))
    return found
