"""`efibootmgr -v`: BootCurrent, BootOrder and the Boot#### entries with their device paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rescue_runtime.layout.model import EfiEntry

_ENTRY = re.compile(r"^Boot([0-9A-Fa-f]{4})(\*?)\s+(.*)$")
_GPT = re.compile(r"HD\(\d+,GPT,([0-9a-fA-F-]{36})", re.IGNORECASE)
_FILE = re.compile(r"File\(([^)]*)\)")


@dataclass
class EfiBoot:
    current: str | None = None
    order: list[str] = field(default_factory=list)
    entries: list[EfiEntry] = field(default_factory=list)


def parse(text: str) -> EfiBoot:
    boot = EfiBoot()
    for line in text.splitlines():
        line = line.rstrip()
        if line.startswith("BootCurrent:"):
            boot.current = line.split(":", 1)[1].strip() or None
        elif line.startswith("BootOrder:"):
            boot.order = [x for x in line.split(":", 1)[1].strip().split(",") if x]
        else:
            m = _ENTRY.match(line)
            if not m:
                continue
            rest = m.group(3)
            # Label and device path are separated by a tab (efibootmgr 17/18) or, in
            # older versions, by at least two spaces; there may be no device path at all.
            if "\t" in rest:
                label, _, path = rest.partition("\t")
            else:
                parts = re.split(r"\s{2,}", rest, maxsplit=1)
                label, path = parts[0], parts[1] if len(parts) > 1 else ""
            part = _GPT.search(path)
            loader = _FILE.search(path)
            boot.entries.append(
                EfiEntry(
                    number=m.group(1).upper(),
                    label=label.strip(),
                    active=m.group(2) == "*",
                    partition_uuid=part.group(1).lower() if part else None,
                    loader=loader.group(1) if loader else None,
                    device_path=path.strip() or None,
                )
            )
    return boot
