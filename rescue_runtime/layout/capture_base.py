"""What every layer of the capture shares: lsblk's devices by every name, the layout being
filled in, notes, and the probe's tools and files (capture.py puts the layers together)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from rescue_runtime.layout.model import GPT_TYPE_FLAGS, MBR_TYPE_FLAGS, Layout
from rescue_runtime.layout.parse.lsblk import BlockDevice
from rescue_runtime.layout.probe import Probe

DISK_TYPES = ("disk", "loop")
EXT_TYPES = ("ext2", "ext3", "ext4")
# Types lsblk reports that are not file systems to recreate but layers of the stack.
CONTAINER_TYPES = ("LVM2_member", "crypto_LUKS", "linux_raid_member", "mpath_member")
# Signatures of layers capture describes only when they are open or running.
UNOPENED = {
    "crypto_LUKS": "a LUKS container that is not open",
    "linux_raid_member": "an MD RAID member of no running array",
}
# /dev/disk/by-id links named after a device's content, not its hardware.
CONTENT_LINKS = ("lvm-pv-uuid-", "md-uuid-", "md-name-", "dm-uuid-", "dm-name-")


@dataclass
class Devices:
    """lsblk's devices with every name they can be reached by."""

    all: list[BlockDevice]
    by_name: dict[str, BlockDevice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for dev in self.all:
            for name in (dev.path, f"/dev/{dev.kname}", f"/dev/{dev.name}"):
                self.by_name.setdefault(name, dev)
            if dev.type in ("lvm", "crypt", "mpath"):
                self.by_name.setdefault(f"/dev/mapper/{dev.name}", dev)
            if dev.maj_min:
                self.by_name.setdefault(f"majmin:{dev.maj_min}", dev)

    def resolve(self, name: str) -> BlockDevice | None:
        """A device by path, symlink (/dev/vg/lv, /dev/disk/by-uuid/...) or maj:min."""
        found = self.by_name.get(name)
        if found is None and name.startswith("/dev/"):
            found = self.by_name.get(os.path.realpath(name))
        return found


def partition_number(path: str) -> int:
    m = re.search(r"(\d+)$", path)
    return int(m.group(1)) if m else 0


def partition_flags(ptype: str, table: str, bootable: bool, attrs: str | None) -> list[str]:
    flags = []
    role = GPT_TYPE_FLAGS.get(ptype) if table == "gpt" else MBR_TYPE_FLAGS.get(ptype)
    if role:
        flags.append(role)
    if bootable:
        flags.append("boot")
    if attrs and "LegacyBIOSBootable" in attrs:
        flags.append("legacy_boot")
    return flags


class CaptureBase:
    """The state the layer mixins (capture_disks, capture_stacks, capture_fs, capture_mounts)
    work on."""

    def __init__(self, probe: Probe, root: str, luks_header_dir: str | None) -> None:
        self.probe = probe
        self.root = root.rstrip("/") or "/"
        self.luks_header_dir = luks_header_dir
        self.layout = Layout()

    def note(self, text: str) -> None:
        self.layout.notes.append(text)

    def tool(self, argv: list[str], *, what: str, part: str) -> str | None:
        out = self.probe.tool(argv, what=what)
        if out is None:
            self.note(f"{argv[0]} is not installed: {part} not captured.")
        return out

    def etc(self, name: str) -> str:
        return self.probe.read(os.path.join(self.root, "etc", name)) or ""

    def unreadable(self, device: str) -> bool:
        """A device the kernel lists but this process may not open: noted, not fatal (its
        details stay empty and recovery will say so); any other tool failure is an error."""
        problem = self.probe.cannot_open(device)
        if problem is not None:
            self.note(f"cannot open {device} ({problem}): its details are not captured.")
        return problem is not None

    @staticmethod
    def _path(devs: Devices, name: str) -> str:
        dev = devs.resolve(name)
        return dev.path if dev else name

    @staticmethod
    def resolve_spec(devs: Devices, spec: str) -> BlockDevice | None:
        key, sep, value = spec.partition("=")
        if sep and key in ("UUID", "LABEL", "PARTUUID", "PARTLABEL"):
            attr = {
                "UUID": "uuid",
                "LABEL": "label",
                "PARTUUID": "partuuid",
                "PARTLABEL": "partlabel",
            }[key]
            value = value.strip('"')
            return next(
                (d for d in devs.all if (getattr(d, attr) or "").lower() == value.lower()), None
            )
        return devs.resolve(spec)
