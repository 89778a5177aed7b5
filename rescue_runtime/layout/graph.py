"""The dependency graph of a layout: what each component is built on, in creation order.

Nodes are component ids (model.py); an edge A -> B means A needs B first (a partition needs
its disk, an LV its VG, a mount its file system and its parent mount). Device paths are
resolved through every name the kernel and the tools use for them (/dev/VG/LV,
/dev/mapper/VG-LV, /dev/md/NAME, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rescue_runtime.layout.model import Layout, LogicalVolume, Mount

Component = object


def dm_name(vg: str, lv: str) -> str:
    """The device-mapper name LVM gives an LV: dashes inside names are doubled."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def lv_paths(lv: LogicalVolume) -> list[str]:
    return [lv.path, f"/dev/{lv.vg}/{lv.name}", f"/dev/mapper/{dm_name(lv.vg, lv.name)}"]


def parent_mountpoint(mountpoint: str, mountpoints: list[str]) -> str | None:
    """The longest other mount point that contains `mountpoint` ("/" contains everything)."""
    best: str | None = None
    for other in mountpoints:
        if other == mountpoint:
            continue
        prefix = other.rstrip("/") + "/"
        if (other == "/" or mountpoint.startswith(prefix)) and (
            best is None or len(other) > len(best)
        ):
            best = other
    return best


@dataclass
class Graph:
    nodes: dict[str, Component] = field(default_factory=dict)
    deps: dict[str, list[str]] = field(default_factory=dict)
    # Device paths that something depends on but the layout does not describe.
    unresolved: dict[str, list[str]] = field(default_factory=dict)

    def add(self, node_id: str, component: Component, deps: list[str]) -> None:
        self.nodes[node_id] = component
        unique: list[str] = []
        for dep in deps:
            if dep not in unique and dep != node_id:
                unique.append(dep)
        self.deps[node_id] = unique

    def depends_on(self, node_id: str) -> list[str]:
        """The direct dependencies of a node that are in the graph."""
        return [d for d in self.deps.get(node_id, []) if d in self.nodes]

    def children(self, node_id: str) -> list[str]:
        """The nodes built directly on `node_id`, in the graph's order."""
        return [n for n, deps in self.deps.items() if node_id in deps]

    def descendants(self, node_id: str) -> list[str]:
        """Everything built on `node_id`, directly or not (not itself)."""
        found: list[str] = []
        todo = [node_id]
        while todo:
            for child in self.children(todo.pop(0)):
                if child not in found:
                    found.append(child)
                    todo.append(child)
        return found

    def closure(self, node_ids: list[str]) -> list[str]:
        """`node_ids` and everything they depend on, in creation order (dependencies first)."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(node: str) -> None:
            if node in order or node not in self.nodes:
                return
            if node in visiting:
                raise ValueError(f"dependency cycle through {node}")
            visiting.add(node)
            for dep in self.deps.get(node, []):
                visit(dep)
            visiting.discard(node)
            order.append(node)

        for node in node_ids:
            visit(node)
        return order

    def creation_order(self) -> list[str]:
        return self.closure(list(self.nodes))

    def dependencies_of_mount(self, mountpoint: str) -> list[str]:
        """What must exist (and be opened/assembled/mounted) to mount `mountpoint`."""
        return self.closure([f"mount:{mountpoint}"])


def device_index(layout: Layout) -> dict[str, str]:
    """Map every known device path (and alias) to the id of the component that provides it."""
    index: dict[str, str] = {}
    for disk in layout.disks:
        index[disk.path] = disk.id
        for part in disk.partitions:
            index[part.path] = part.id
    for mp in layout.multipaths:
        index[mp.path] = mp.id
        index[f"/dev/mapper/{mp.name}"] = mp.id
    for md in layout.mds:
        index[md.path] = md.id
        if md.name:
            index[f"/dev/md/{md.name.split(':')[-1]}"] = md.id
    for luks in layout.luks:
        index[luks.path] = luks.id
        index[f"/dev/mapper/{luks.name}"] = luks.id
    for lv in layout.lvs:
        for alias in lv_paths(lv):
            index[alias] = lv.id
    return index


def build_graph(layout: Layout) -> Graph:
    graph = Graph()
    index = device_index(layout)

    def resolve(owner: str, device: str) -> str:
        found = index.get(device)
        if found is None:
            graph.unresolved.setdefault(owner, []).append(device)
            return f"dev:{device}"
        return found

    mp_of_disk = {p: mp.id for mp in layout.multipaths for p in mp.paths}
    for mp in layout.multipaths:
        graph.add(mp.id, mp, [resolve(mp.id, p) for p in mp.paths])
    for disk in layout.disks:
        graph.add(disk.id, disk, [])
        for part in disk.partitions:
            deps = [mp_of_disk.get(part.disk, f"disk:{part.disk}")]
            if part.kind == "logical":
                ext = next((p for p in disk.partitions if p.kind == "extended"), None)
                if ext is not None:
                    deps.append(ext.id)
            graph.add(part.id, part, deps)
    for md in layout.mds:
        graph.add(md.id, md, [resolve(md.id, d) for d in md.members + md.spares])
    for luks in layout.luks:
        graph.add(luks.id, luks, [resolve(luks.id, luks.device)])
    for pv in layout.pvs:
        graph.add(pv.id, pv, [resolve(pv.id, pv.device)])
    for vg in layout.vgs:
        graph.add(vg.id, vg, [f"pv:{d}" for d in vg.pvs])
    for lv in layout.lvs:
        deps = [f"vg:{lv.vg}"]
        if lv.pool:
            deps.append(f"lv:{lv.vg}/{lv.pool}")
        if lv.origin:
            deps.append(f"lv:{lv.vg}/{lv.origin}")
        graph.add(lv.id, lv, deps)
    for fs in layout.filesystems:
        devices = fs.btrfs.devices if fs.btrfs and fs.btrfs.devices else [fs.device]
        graph.add(fs.id, fs, [resolve(fs.id, d) for d in devices])
    mountpoints = [m.mountpoint for m in layout.mounts if m.fstype != "swap"]
    for mount in layout.mounts:
        deps = [f"fs:{mount.device}"]
        if mount.fstype != "swap":
            parent = parent_mountpoint(mount.mountpoint, mountpoints)
            if parent is not None:
                deps.append(f"mount:{parent}")
        graph.add(mount.id, mount, deps)
    return graph


def mount_order(layout: Layout) -> list[Mount]:
    """The mounts in the order they can be mounted (parents first)."""
    graph = build_graph(layout)
    return [
        n
        for n in (graph.nodes[i] for i in graph.creation_order())
        if isinstance(n, Mount) and n.fstype != "swap"
    ]
