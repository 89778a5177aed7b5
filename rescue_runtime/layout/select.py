"""Choose what a layout keeps: what the mounted file systems and swap depend on and
everything else on those disks and volume groups, less the excluded components (and
everything built on them), file systems mounted below AUTOEXCLUDE_PATH, and never the backup
or rescue media disk.

A kept disk keeps all its partitions: a partition table is recreated whole, with the same
numbers and positions, and what sits on each partition with it (a second disk's copy of the
ESP, an unmounted LV): a recovery must not silently lose a volume nothing mounts.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import TypeVar

from rescue_runtime.layout.graph import Graph, build_graph, lv_paths
from rescue_runtime.layout.model import (
    CaptureOptions,
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

# AUTOEXCLUDE_PATH's default, as ReaR's: where removable media and job disks get mounted.
DEFAULT_AUTOEXCLUDE = ("/media", "/run", "/mnt", "/tmp")


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


def matching_pattern(node_id: str, node: object, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        for name in [node_id, *component_names(node)]:
            if fnmatch.fnmatchcase(name, pattern):
                return pattern
    return None


def autoexcluded(mountpoint: str, paths: Iterable[str]) -> str | None:
    """The AUTOEXCLUDE_PATH entry `mountpoint` lies strictly below (as ReaR's: a separate /tmp
    file system stays, one mounted on /tmp/job does not)."""
    for path in paths:
        base = path.rstrip("/")
        if mountpoint.startswith(base + "/") and mountpoint != (base or "/"):
            return path
    return None


def _banned(
    layout: Layout, graph: Graph, patterns: list[str], disk_patterns: list[str], auto: list[str]
) -> dict[str, str]:
    """Component id -> why it is left out, with everything built on it."""
    banned: dict[str, str] = {}
    for node_id, node in graph.nodes.items():
        if isinstance(node, Disk) and matching_pattern(node_id, node, disk_patterns):
            banned[node_id] = "the backup or rescue media disk"
        elif patterns and (pattern := matching_pattern(node_id, node, patterns)):
            banned[node_id] = f"excluded by {pattern!r}"
        elif (
            isinstance(node, Mount)
            and node.fstype != "swap"
            and (path := autoexcluded(node.mountpoint, auto))
        ):
            banned[node_id] = f"mounted below {path} (AUTOEXCLUDE_PATH)"

    def spread() -> None:
        for node_id in list(banned):
            for child in graph.descendants(node_id):
                banned.setdefault(child, f"built on {node_id}, which is left out")

    spread()
    # A left-out mount or swap takes its file system along, unless a mount that stays uses
    # it too (a btrfs subvolume mounted elsewhere).
    for fs in layout.filesystems:
        users = [m.id for m in layout.mounts if m.device == fs.device]
        if fs.id not in banned and users and all(u in banned for u in users):
            banned[fs.id] = f"only {', '.join(users)} used it, which is left out"
    spread()
    return banned


def select(layout: Layout, options: CaptureOptions) -> Layout:
    """Return `layout` trimmed to what is needed (in place: the same object), as `options`
    say (`devices` and `root` were the capture's own).

    Needed is what the mounts and swap depend on, and then everything else on the same
    disks and in the same volume groups: every partition of a kept disk, every LV of a kept
    VG, and whatever sits on them (a file system, an array, a PV), marked `unmounted` when no
    mount or swap uses it. `exclude` drops components by id or name pattern with everything
    built on them, `exclude_disks` whole disks; `autoexclude` leaves out file systems mounted
    below those paths (AUTOEXCLUDE_PATH); `everything` keeps what nothing mounts on other disks
    too; a disk with nothing kept on it is left out.
    """
    graph = build_graph(layout)
    banned = _banned(layout, graph, options.exclude, options.exclude_disks, options.autoexclude)
    if options.everything:
        targets = list(graph.nodes)
    else:
        targets = [n for n in graph.nodes if n.startswith(("mount:", "swap:"))]
    used = set(graph.closure([t for t in targets if t not in banned]))
    keep = set(used)
    # Down again from everything kept (a kept partition's file system, a kept VG's LVs), and
    # up to what that needs (an array's other members' disks), until nothing is added.
    todo = list(keep)
    while todo:
        for child in graph.children(todo.pop()):
            if child in banned or child in keep:
                continue
            for node in graph.closure([child]):
                if node not in keep:
                    keep.add(node)
                    todo.append(node)
    # Record what is left out that the selection would otherwise have needed or kept.
    wanted = set(graph.closure(targets))
    near = {n for n in banned if any(d in keep for d in graph.depends_on(n))}
    layout.excluded += [
        Excluded(id=n, reason=r)
        for n, r in banned.items()
        if n in wanted or n in targets or n in near
    ]
    for node_id in graph.nodes:
        if node_id in wanted and node_id not in keep and node_id not in banned:
            reason = (
                "nothing kept remains on it"
                if isinstance(graph.nodes[node_id], Disk)
                else "used only by what is left out"
            )
            layout.excluded.append(Excluded(id=node_id, reason=reason))
    for node_id in keep:
        if hasattr(graph.nodes[node_id], "unmounted"):  # every component but a mount
            setattr(graph.nodes[node_id], "unmounted", node_id not in used)  # noqa: B010

    retain(layout, lambda node_id: node_id in keep)
    return layout


def retain(layout: Layout, wanted: Callable[[str], bool]) -> None:
    """Keep, in every component list of `layout` (in place), those whose id `wanted` takes."""

    def kept(items: list[T]) -> list[T]:
        return [i for i in items if wanted(getattr(i, "id", ""))]

    layout.disks = kept(layout.disks)
    layout.multipaths = kept(layout.multipaths)
    layout.mds = kept(layout.mds)
    layout.luks = kept(layout.luks)
    layout.pvs = kept(layout.pvs)
    layout.vgs = kept(layout.vgs)
    layout.lvs = kept(layout.lvs)
    layout.filesystems = kept(layout.filesystems)
    layout.mounts = kept(layout.mounts)
