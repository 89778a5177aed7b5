"""`multipath -ll` (multipath-tools 0.7 to 0.9): one map header, then path groups."""

from __future__ import annotations

import re

from rescue_runtime.layout.model import Multipath
from rescue_runtime.layout.parse.common import size_with_unit

# "mpatha (3600508b4000156d700012000000b0000) dm-0 HP,HSV210" or, with user_friendly_names
# off, "3600508b4000156d700012000000b0000 dm-0 HP,HSV210".
_HEADER = re.compile(r"^(\S+)(?:\s+\(([^)]+)\))?\s+(dm-\d+)\s+(.*)$")
_SIZE = re.compile(r"^size=(\S+)")
_PATH = re.compile(r"\d+:\d+:\d+:\d+\s+(\S+)\s+\d+:\d+")


def parse(text: str) -> list[Multipath]:
    maps: list[Multipath] = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m and not line.startswith((" ", "|", "`")):
            vendor, _, product = m.group(4).partition(",")
            maps.append(
                Multipath(
                    name=m.group(1),
                    path=f"/dev/mapper/{m.group(1)}",
                    wwid=m.group(2) or m.group(1),
                    vendor=vendor.strip() or None,
                    product=product.strip() or None,
                )
            )
            continue
        if not maps:
            continue
        s = _SIZE.match(line.strip())
        if s:
            size = s.group(1).upper().rstrip("B")
            maps[-1].size = size_with_unit(size)
            continue
        p = _PATH.search(line)
        if p:
            maps[-1].paths.append(f"/dev/{p.group(1)}")
    return maps
