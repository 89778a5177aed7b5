"""Leaving components out of a recovery, with everything built on them.

Three reasons lead here: EXCLUDE_RECREATE names them (patterns as `layout save` takes them:
mount points, devices, VGs, vg/lv, component ids); a saved disk has no place on this machine
and the operator agrees to go on without it (interactive only); or a saved disk is the
redundant half of RAID1 mirrors and fewer disks are present. An MD RAID1 array that keeps at
least one member is not left out but recreated degraded (`mdadm --create` with `missing` in
the lost slots); anything else built on a left-out component goes with it. The mount points
of left-out file systems are returned so the restore leaves their content out
(`tar --exclude`), and every decision goes into the recovery report.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

from rescue_runtime.errors import ConfigError
from rescue_runtime.layout.graph import Graph, build_graph
from rescue_runtime.layout.model import Disk, Excluded, Layout, MdArray, Mount, Partition
from rescue_runtime.layout.select import matching_pattern, retain

REDUNDANT_LEVELS = ("raid1",)  # levels whose array still works with one member


@dataclass
class LeftOut:
    layout: Layout
    removed: dict[str, str] = field(default_factory=dict)  # component id -> why
    degraded: list[str] = field(default_factory=list)  # "md:/dev/md0: slot 1 (/dev/vdb2) missing"
    skipped_mounts: list[str] = field(default_factory=list)  # mount points not restored


def matching_ids(layout: Layout, patterns: Iterable[str], setting: str) -> dict[str, str]:
    """Component id -> the pattern that names it; a pattern that names nothing is refused
    (a typo must not let recover rebuild what the operator meant to leave out)."""
    graph = build_graph(layout)
    found: dict[str, str] = {}
    for pattern in patterns:
        hits = [n for n, node in graph.nodes.items() if matching_pattern(n, node, [pattern])]
        if not hits:
            raise ConfigError(
                f"{setting} names {pattern!r}, which is no component of the saved layout; "
                "nothing was touched.",
                hint="Use a mount point, device, VG, vg/lv or component id as `mkmedia layout "
                "show` lists them.",
            )
        for hit in hits:
            found.setdefault(hit, pattern)
    return found


def leave_out(layout: Layout, reasons: dict[str, str]) -> LeftOut:
    """A copy of `layout` without the components in `reasons` (id -> why) and what is built
    on them; RAID1 arrays that keep a member are degraded instead."""
    layout = copy.deepcopy(layout)
    graph = build_graph(layout)
    removed = dict(reasons)
    result = LeftOut(layout, removed)
    for node_id in graph.creation_order():
        if node_id in removed:
            continue
        node = graph.nodes[node_id]
        gone = [d for d in graph.depends_on(node_id) if d in removed]
        if not gone:
            continue
        if (
            isinstance(node, MdArray)
            and node.level in REDUNDANT_LEVELS
            and _degrade(node, removed, graph.depends_on(node_id), result)
        ):
            continue
        removed[node_id] = f"built on {gone[0]}, which is left out"
    for node_id, why in removed.items():
        layout.excluded.append(Excluded(id=node_id, reason=f"left out at recovery: {why}"))
        node = graph.nodes.get(node_id)
        if isinstance(node, Mount) and node.fstype != "swap":
            result.skipped_mounts.append(node.mountpoint)

    retain(layout, lambda node_id: node_id not in removed)
    for disk in layout.disks:
        disk.partitions = [p for p in disk.partitions if p.id not in removed]
    _drop_boot_entries(layout, graph.nodes, removed)
    result.skipped_mounts.sort()
    return result


def _degrade(md: MdArray, removed: dict[str, str], deps: list[str], result: LeftOut) -> bool:
    """Take the left-out members out of `md`'s slots; False when none would remain."""
    index = {f"part:{m}": m for m in md.members} | {f"disk:{m}": m for m in md.members}
    lost = {index[d] for d in deps if d in removed and d in index}
    if len(lost) >= len(md.members):
        return False
    slots = md.slots()
    for slot, device in enumerate(slots):
        if device in lost:
            md.missing.append(slot)
            result.degraded.append(f"{md.path}: slot {slot} ({device}) missing")
    md.missing.sort()
    md.members = [m for m in md.members if m not in lost]
    md.spares = [s for s in md.spares if f"part:{s}" not in removed and f"disk:{s}" not in removed]
    return True


def _drop_boot_entries(layout: Layout, nodes: dict[str, object], removed: dict[str, str]) -> None:
    """Boot loaders on left-out disks and firmware entries of left-out ESPs go too."""
    gone_disks = {n.path for i, n in nodes.items() if i in removed and isinstance(n, Disk)}
    gone_uuids = {
        (n.uuid or "").lower()
        for i, n in nodes.items()
        if i in removed and isinstance(n, Partition) and n.uuid
    }
    layout.boot.loaders = [b for b in layout.boot.loaders if b.location not in gone_disks]
    layout.boot.efi_entries = [
        e for e in layout.boot.efi_entries if (e.partition_uuid or "").lower() not in gone_uuids
    ]


def redundant_disk(layout: Layout, path: str) -> bool:
    """True when every partition of the disk (or the disk itself) is a member of a RAID1
    array with a member elsewhere, or holds nothing at all (a BIOS boot partition, an empty
    partition): leaving it out loses no data, the arrays run degraded."""
    disk = layout.disk(path)
    if disk is None:
        return False
    graph = build_graph(layout)
    # an extended partition only holds the logical ones, which are checked themselves
    devices = [p.path for p in disk.partitions if p.kind != "extended"] or [disk.path]
    for device in devices:
        owner = f"part:{device}" if disk.partitions else disk.id
        children = graph.children(owner)
        if not children or _esp_copy(layout, graph, device, children):
            continue
        arrays = [graph.nodes[c] for c in children]
        if len(arrays) != 1 or not isinstance(arrays[0], MdArray):
            return False
        md = arrays[0]
        others = [m for m in md.members if m not in devices]
        if md.level not in REDUNDANT_LEVELS or not others:
            return False
    return True


def _esp_copy(layout: Layout, graph: Graph, device: str, children: list[str]) -> bool:
    """A second disk's ESP that nothing mounts: finalize fills the mirrors it finds."""
    part = next((p for p in layout.partitions() if p.path == device), None)
    if part is None or "esp" not in part.flags:
        return False
    return all(c.startswith("fs:") and not graph.children(c) for c in children)
