"""Compare two layouts and report only what matters for recovery.

Components are matched by id. Added, removed, resized or re-identified (UUID, type, table
id) components are differences; usage, free space, mount counts, EFI boot order, notes and
capture time are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import (
    Disk,
    Filesystem,
    Layout,
    LogicalVolume,
    LuksDevice,
    MdArray,
    Mount,
    Multipath,
    Partition,
    PhysicalVolume,
    VolumeGroup,
)
from rescue_runtime.layout.render import human

SIZE_FIELDS = {"size", "start"}


@dataclass(frozen=True)
class Difference:
    kind: str  # added | removed | changed
    id: str
    field: str | None = None
    old: object = None
    new: object = None

    def __str__(self) -> str:
        if self.kind != "changed":
            return f"{self.kind}: {self.id}"

        def show(value: object) -> str:
            if self.field in SIZE_FIELDS and isinstance(value, int):
                return f"{value} ({human(value)})"
            return repr(value)

        return f"changed: {self.id} {self.field}: {show(self.old)} -> {show(self.new)}"


# The fields of each kind of component that recovery depends on; a list compares sorted.
SIGNIFICANT: dict[type, tuple[str, ...]] = {
    Disk: ("size", "logical_sector_size", "table", "table_id"),
    Partition: ("number", "start", "size", "type", "name", "uuid", "flags", "kind"),
    Multipath: ("wwid", "size"),
    MdArray: (
        "level",
        "metadata",
        "uuid",
        "chunk_size",
        "layout",
        "raid_devices",
        "members",
        "size",
    ),
    LuksDevice: ("device", "version", "uuid", "label", "cipher", "key_size", "sector_size"),
    PhysicalVolume: ("uuid", "vg", "size"),
    VolumeGroup: ("uuid", "extent_size", "pvs"),
    LogicalVolume: ("uuid", "size", "segtype", "stripes", "stripe_size", "pool"),
    Filesystem: ("fstype", "uuid", "label"),
    Mount: ("device", "fstype", "fsroot", "fstab_spec"),
}


def significant(node: object) -> dict[str, object]:
    """The fields of a component that recovery depends on."""
    fields: dict[str, object] = {}
    for name in SIGNIFICANT.get(type(node), ()):
        value = getattr(node, name)
        fields[name] = sorted(value) if isinstance(value, list) else value
    if isinstance(node, Filesystem):
        if node.ext:
            fields["ext.features"] = sorted(node.ext.features)
            fields["ext.block_size"] = node.ext.block_size
            fields["ext.inode_size"] = node.ext.inode_size
        if node.xfs:
            fields["xfs.block_size"] = node.xfs.block_size
            fields["xfs.inode_size"] = node.xfs.inode_size
            fields["xfs.features"] = dict(sorted(node.xfs.features.items()))
        if node.btrfs:
            fields["btrfs.data_profile"] = node.btrfs.data_profile
            fields["btrfs.metadata_profile"] = node.btrfs.metadata_profile
            fields["btrfs.devices"] = sorted(node.btrfs.devices)
            fields["btrfs.subvolumes"] = sorted((s.id, s.path) for s in node.btrfs.subvolumes)
            fields["btrfs.default_subvolume"] = node.btrfs.default_subvolume
    return fields


def compare(old: Layout, new: Layout) -> list[Difference]:
    before = build_graph(old).nodes
    after = build_graph(new).nodes
    diffs: list[Difference] = []
    for node_id in before:
        if node_id not in after:
            diffs.append(Difference("removed", node_id))
    for node_id, node in after.items():
        if node_id not in before:
            diffs.append(Difference("added", node_id))
            continue
        a, b = significant(before[node_id]), significant(node)
        for key in a.keys() | b.keys():
            if a.get(key) != b.get(key):
                diffs.append(Difference("changed", node_id, key, a.get(key), b.get(key)))
    if old.boot.firmware != new.boot.firmware:
        diffs.append(
            Difference("changed", "boot", "firmware", old.boot.firmware, new.boot.firmware)
        )
    loaders_old = sorted((x.kind, x.location) for x in old.boot.loaders)
    loaders_new = sorted((x.kind, x.location) for x in new.boot.loaders)
    if loaders_old != loaders_new:
        diffs.append(Difference("changed", "boot", "loaders", loaders_old, loaders_new))
    diffs.sort(key=lambda d: (d.id, d.kind, d.field or ""))
    return diffs
