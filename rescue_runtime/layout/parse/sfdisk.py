"""`sfdisk -J DISK`: the partition table with exact sectors, types, names and attributes."""

from __future__ import annotations

from dataclasses import dataclass, field

from rescue_runtime.layout.parse.common import ParseError, load_json, nonempty, to_int

TOOL = "sfdisk -J"


@dataclass
class SfdiskPartition:
    node: str
    start: int  # sectors
    size: int  # sectors
    type: str  # GUID (upper case) or MBR hex ("83", "5")
    uuid: str | None = None
    name: str | None = None
    attrs: str | None = None
    bootable: bool = False


@dataclass
class SfdiskTable:
    label: str  # gpt | dos
    id: str | None
    device: str
    sector_size: int
    first_lba: int | None = None
    last_lba: int | None = None
    partitions: list[SfdiskPartition] = field(default_factory=list)


def parse(text: str) -> SfdiskTable:
    data = load_json(TOOL, text)
    table = data.get("partitiontable") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ParseError(TOOL, "no 'partitiontable' object")
    if table.get("unit", "sectors") != "sectors":
        raise ParseError(TOOL, f"unit {table.get('unit')!r} (expected sectors)")
    parts = []
    for raw in table.get("partitions") or []:
        ptype = str(raw.get("type", ""))
        # MBR types are hex without 0x; GUIDs are compared upper case.
        ptype = ptype.upper() if "-" in ptype else ptype.lower().removeprefix("0x")
        parts.append(
            SfdiskPartition(
                node=str(raw["node"]),
                start=to_int(raw.get("start")) or 0,
                size=to_int(raw.get("size")) or 0,
                type=ptype,
                uuid=nonempty(raw.get("uuid")),
                name=nonempty(raw.get("name")),
                attrs=nonempty(raw.get("attrs")),
                bootable=bool(raw.get("bootable", False)),
            )
        )
    label = str(table.get("label", ""))
    return SfdiskTable(
        label=label,
        id=nonempty(table.get("id")),
        device=str(table.get("device", "")),
        # sfdisk before 2.36 has no sectorsize key: it always meant 512-byte units then.
        sector_size=to_int(table.get("sectorsize")) or 512,
        first_lba=to_int(table.get("firstlba")),
        last_lba=to_int(table.get("lastlba")),
        partitions=parts,
    )
