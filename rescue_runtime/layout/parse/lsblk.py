"""`lsblk -J -b -O` (util-linux 2.33 and later; older ones print numbers as strings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rescue_runtime.layout.parse.common import ParseError, load_json, nonempty, to_bool, to_int

TOOL = "lsblk -J -b -O"


@dataclass
class BlockDevice:
    name: str
    kname: str
    path: str
    type: str  # disk, part, loop, lvm, crypt, raid1, mpath, rom, ...
    size: int
    maj_min: str | None = None
    log_sec: int | None = None
    phy_sec: int | None = None
    pttype: str | None = None
    ptuuid: str | None = None
    parttype: str | None = None
    parttypename: str | None = None
    partlabel: str | None = None
    partuuid: str | None = None
    partflags: str | None = None
    fstype: str | None = None
    fsver: str | None = None
    uuid: str | None = None
    label: str | None = None
    model: str | None = None
    serial: str | None = None
    wwn: str | None = None
    vendor: str | None = None
    tran: str | None = None
    rota: bool | None = None
    rm: bool | None = None
    ro: bool | None = None
    start: int | None = None  # sectors (512 bytes), 2.35 and later
    pkname: str | None = None
    mountpoints: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)  # paths of the devices it sits on


def _device(raw: dict[str, Any], parent: str | None) -> BlockDevice:
    name = raw.get("name")
    if not isinstance(name, str):
        raise ParseError(TOOL, f"a device without a name: {raw!r}")
    kname = nonempty(raw.get("kname")) or name
    path = nonempty(raw.get("path")) or (
        f"/dev/mapper/{name}" if raw.get("type") in ("lvm", "crypt", "mpath") else f"/dev/{name}"
    )
    mounts = raw.get("mountpoints")
    if mounts is None:
        mounts = [raw.get("mountpoint")]
    return BlockDevice(
        name=name,
        kname=kname,
        path=path,
        type=str(raw.get("type") or ""),
        size=to_int(raw.get("size")) or 0,
        maj_min=nonempty(raw.get("maj:min")),
        log_sec=to_int(raw.get("log-sec")),
        phy_sec=to_int(raw.get("phy-sec")),
        pttype=nonempty(raw.get("pttype")),
        ptuuid=nonempty(raw.get("ptuuid")),
        parttype=nonempty(raw.get("parttype")),
        parttypename=nonempty(raw.get("parttypename")),
        partlabel=nonempty(raw.get("partlabel")),
        partuuid=nonempty(raw.get("partuuid")),
        partflags=nonempty(raw.get("partflags")),
        fstype=nonempty(raw.get("fstype")),
        fsver=nonempty(raw.get("fsver")),
        uuid=nonempty(raw.get("uuid")),
        label=nonempty(raw.get("label")),
        model=nonempty(raw.get("model")),
        serial=nonempty(raw.get("serial")),
        wwn=nonempty(raw.get("wwn")),
        vendor=nonempty(raw.get("vendor")),
        tran=nonempty(raw.get("tran")),
        rota=to_bool(raw.get("rota")),
        rm=to_bool(raw.get("rm")),
        ro=to_bool(raw.get("ro")),
        start=to_int(raw.get("start")),
        pkname=nonempty(raw.get("pkname")),
        mountpoints=[m for m in mounts if m],
        parents=[parent] if parent else [],
    )


def parse(text: str) -> list[BlockDevice]:
    """All devices, parents before children, each once (a RAID or VG on two disks appears
    under both in lsblk's tree: the copies are merged and their parents collected)."""
    data = load_json(TOOL, text)
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        raise ParseError(TOOL, "no 'blockdevices' list")
    found: dict[str, BlockDevice] = {}

    def walk(raw: dict[str, Any], parent: str | None) -> None:
        dev = _device(raw, parent)
        seen = found.get(dev.path)
        if seen is None:
            found[dev.path] = dev
        elif parent and parent not in seen.parents:
            seen.parents.append(parent)
        for child in raw.get("children") or []:
            walk(child, dev.path)

    for raw in data["blockdevices"]:
        walk(raw, None)
    return list(found.values())
