"""`mdadm --detail --export MD` (KEY=VALUE) and `mdadm --detail MD` (the readable report,
which alone carries chunk size, layout, bitmap and array size). mdadm 3.3 to 4.3."""

from __future__ import annotations

import re

from rescue_runtime.layout.model import MdArray
from rescue_runtime.layout.parse.common import ParseError, key_value_blocks, size_with_unit


def parse_export(text: str, path: str) -> MdArray:
    blocks = key_value_blocks(text)
    values = blocks[0] if blocks else {}
    if "MD_LEVEL" not in values:
        raise ParseError("mdadm --detail --export", f"no MD_LEVEL for {path}")
    members: dict[int, str] = {}
    spares: list[str] = []
    for key, role in values.items():
        m = re.fullmatch(r"MD_DEVICE_(\w+)_ROLE", key)
        if not m:
            continue
        dev = values.get(f"MD_DEVICE_{m.group(1)}_DEV")
        if dev is None:
            continue
        if role.isdigit():
            members[int(role)] = dev
        else:
            spares.append(dev)
    return MdArray(
        path=path,
        level=values["MD_LEVEL"],
        metadata=values.get("MD_METADATA"),
        uuid=values.get("MD_UUID"),
        name=values.get("MD_NAME"),
        raid_devices=int(values["MD_DEVICES"]) if values.get("MD_DEVICES", "").isdigit() else None,
        members=[members[k] for k in sorted(members)],
        spares=spares,
        container=values.get("MD_CONTAINER"),
    )


def parse_detail(text: str, array: MdArray) -> MdArray:
    """Fill in what only the readable report has; members from it when export had none."""
    fields: dict[str, str] = {}
    devices: list[tuple[str, str]] = []  # (role column, device path) in listed order
    in_table = False
    for line in text.splitlines():
        if re.match(r"\s*Number\s+Major\s+Minor\s+RaidDevice", line):
            in_table = True
            continue
        if in_table:
            words = line.split()
            if len(words) >= 5 and words[-1].startswith("/dev/"):
                devices.append((words[3], " ".join(words[4:-1]) + " " + words[-1]))
            continue
        key, sep, value = line.partition(" : ")
        if sep:
            fields[key.strip()] = value.strip()
    array.level = fields.get("Raid Level", array.level)
    array.metadata = array.metadata or fields.get("Version")
    if not array.uuid and fields.get("UUID"):
        array.uuid = fields["UUID"].split()[0]
    array.name = array.name or (fields["Name"].split()[0] if fields.get("Name") else None)
    if fields.get("Chunk Size"):
        array.chunk_size = size_with_unit(fields["Chunk Size"])
    array.layout = fields.get("Layout", array.layout)
    size = re.match(r"(\d+)", fields.get("Array Size", ""))
    if size:
        array.size = int(size.group(1)) * 1024  # mdadm reports KiB
    if fields.get("Raid Devices", "").isdigit():
        array.raid_devices = int(fields["Raid Devices"])
    bitmap = fields.get("Intent Bitmap")
    if bitmap:
        array.bitmap = "internal" if bitmap.lower() == "internal" else bitmap
    elif fields.get("Consistency Policy") in ("resync", "ppl", "journal"):
        array.bitmap = "none"
    if not array.members and devices:
        array.members = [d.split()[-1] for role, d in devices if role.isdigit()]
        array.spares = [d.split()[-1] for role, d in devices if "spare" in d.split()]
    return array
