"""Choose what a layout keeps: what the mounted file systems and swap depend on, less the
excluded components (and everything built on them), never the backup or rescue media disk.

A kept disk keeps all its partitions: a partition table is recreated whole, with the same
numbers and positions, even where only one partition matters.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TypeVar

from rescue_runtime.layout.graph import build_graph, lv_paths
from rescue_runtime.layout.model import (
    Disk,
    Excluded,
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

T = TypeVar("T")


def component_names(node: object) -> list[str]:
    """The names an exclude pattern can use for a component, besides its id."""
    if isinstance(node, Disk | Partition | Multipath):
        names = [node.path, node.path.removeprefix("/dev/")]
        if isinstance(node, Disk):
            names += node.by_id + node.by_path
        return names
    if isinstance(node, MdArray):
        return [node.path, node.path.removeprefix("/dev/"), *([node.name] if node.name else [])]
    if isinstance(node, LuksDevice):
        return [node.path, node.name]
    if isinstance(node, PhysicalVolume):
        return [node.device]
    if isinstance(node, VolumeGroup):
        return [node.name]
    if isinstance(node, LogicalVolume):
        return [node.full_name, *lv_paths(node)]
    if isinstance(node, Filesystem):
        return [node.device, *([f"UUID={node.uuid}"] if node.uuid else [])]
    if isinstance(node, Mount):
        return [node.mountpoint] if node.fstype != "swap" else [node.device]
    return []


def _matches(node_id: str, node: object, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        for name in [node_id, *component_names(node)]:
            if fnmatch.fnmatchcase(name, pattern):
                return pattern
    return None


def select(
    layout: Layout,
    *,
    exclude: Iterable[str] = (),
    exclude_disks: Iterable[str] = (),
    everything: bool = False,
) -> Layout:
    """Return `layout` trimmed to what is needed (in place: the same object)."""
    graph = build_graph(layout)
    patterns = list(exclude)
    banned: dict[str, str] = {}
    disk_patterns = list(exclude_disks)
    for node_id, node in graph.nodes.items():
        if isinstance(node, Disk) and _matches(node_id, node, disk_patterns):
            banned[node_id] = "the backup or rescue media disk"
        elif patterns and (pattern := _matches(node_id, node, patterns)):
            banned[node_id] = f"excluded by {pattern!r}"
    # Whatever is built on a banned component goes with it.
    for node_id in list(banned):
        for child in graph.descendants(node_id):
            banned.setdefault(child, f"built on {node_id}, which is {banned[node_id]}")
    if everything:
        targets = list(graph.nodes)
    else:
        targets = [n for n in graph.nodes if n.startswith(("mount:", "swap:"))]
    keep = set(graph.closure([t for t in targets if t not in banned]))
    # A kept disk keeps its whole partition table.
    for disk in layout.disks:
        if disk.id in keep:
            keep.update(p.id for p in disk.partitions)
    # Record exclusions that the selection would otherwise have needed.
    wanted = set(graph.closure(targets))
    layout.excluded += [
        Excluded(id=n, reason=r) for n, r in banned.items() if n in wanted or n in targets
    ]

    def kept(items: list[T]) -> list[T]:
        return [i for i in items if getattr(i, "id", None) in keep]

    layout.disks = kept(layout.disks)
    layout.multipaths = kept(layout.multipaths)
    layout.mds = kept(layout.mds)
    layout.luks = kept(layout.luks)
    layout.pvs = kept(layout.pvs)
    layout.vgs = kept(layout.vgs)
    layout.lvs = kept(layout.lvs)
    layout.filesystems = kept(layout.filesystems)
    layout.mounts = kept(layout.mounts)
    # A VG lists only kept PVs (all of them are kept when the VG is: they are its deps).
    return layout
