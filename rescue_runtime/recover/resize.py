"""Recreating a layout on larger disks: partitions, VGs, LVs and file systems grow with them.

RESIZE_PARTITIONS says how a larger disk's new space is shared: `proportional` (every
partition but the small fixed ones — ESP, BIOS boot, PReP — grows by its share), `last` (the
last partition takes it all) or `none` (the new space stays free). Partitions after a grown
one move by whole MiB, so 1 MiB alignment stays. Whatever sits on a grown partition follows:
an MD array or LUKS volume fills it, a PV fills it and its VG's LVs grow proportionally (in
`proportional` mode; in whole extents), and a file system made on a grown device fills it
instead of keeping its old block count.

Smaller disks shrink what sits on them within what the data needs (shrink.py); when the needs
do not fit, `TooSmall` carries the numbers and verify refuses before any write. The disks of
a RAID1 mirror set are all treated as the smallest of them, so the members stay equal (the
larger disk keeps free space at its end).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from rescue_runtime.errors import MissingError
from rescue_runtime.layout.model import Disk, Layout
from rescue_runtime.recover.shrink import FIXED_FLAGS, MiB, Shortfall, Shrinker, usable_end
from rescue_runtime.recover.shrink import align_down as _align_down

MODES = ("proportional", "last", "none")


def grow_disk(disk: Disk, new_size: int, mode: str, notes: list[str]) -> dict[str, float]:
    """Grow `disk`'s partitions in place for `new_size`; returns partition path -> factor."""
    old_size, disk.size = disk.size, new_size
    disk.last_lba = None  # sfdisk puts the usable end and backup GPT at the new end
    parts = sorted(disk.partitions, key=lambda p: p.start)
    if mode == "none" or not parts:
        notes.append(f"{disk.path}: {new_size - old_size} bytes larger, the new space stays free")
        return {}
    if any(p.kind in ("extended", "logical") for p in parts):
        notes.append(f"{disk.path}: MBR logical partitions keep their places and sizes")
        return {}
    delta = usable_end(disk, new_size) - max(
        usable_end(disk, old_size), parts[-1].start + parts[-1].size
    )
    growable = [p for p in parts if not FIXED_FLAGS & set(p.flags)]
    if mode == "last":
        growable = growable[-1:] if growable and growable[-1] is parts[-1] else []
    total = sum(p.size for p in growable)
    if delta < MiB or not total:
        return {}
    shift, factors = 0, {}
    for part in parts:
        part.start += shift
        if part in growable:
            extra = _align_down(delta * part.size // total, MiB)
            factors[part.path] = (part.size + extra) / part.size
            notes.append(f"partition {part.path}: {part.size} -> {part.size + extra} bytes")
            part.size += extra
            shift += extra
    return factors


class TooSmall(MissingError):
    """The target disks cannot hold what the data needs (the numbers are in the message)."""

    def __init__(self, shortfalls: list[Shortfall]) -> None:
        self.shortfalls = shortfalls
        super().__init__(
            "The target disks are too small for the saved layout's data, even with every "
            "file system shrunk to what it used at backup time plus its margin: "
            + "; ".join(s.describe() for s in shortfalls)
            + ". Nothing was touched.",
            hint="Attach larger disks, map the saved disks to larger ones in "
            "/etc/mkmedia/mappings/disks, or leave components out with EXCLUDE_RECREATE.",
        )


def mirror_sizes(layout: Layout, sizes: Mapping[str, int]) -> dict[str, int]:
    """Each disk's size to plan with: the smallest of its RAID1 mirror set (disks whose
    partitions are members of the same RAID1 arrays), its own otherwise."""
    group = {d.path: {d.path} for d in layout.disks}
    disk_of = {p.path: d.path for d in layout.disks for p in d.partitions}
    disk_of.update({d.path: d.path for d in layout.disks})
    for md in layout.mds:
        if md.level != "raid1":
            continue
        disks = {disk_of[m] for m in md.members if m in disk_of}
        merged = set().union(*(group[d] for d in disks)) if disks else set()
        for d in merged:
            group[d] = merged
    planned = {}
    for disk in layout.disks:
        planned[disk.path] = min(sizes.get(d, layout_size(layout, d)) for d in group[disk.path])
    return planned


def layout_size(layout: Layout, path: str) -> int:
    disk = layout.disk(path)
    return disk.size if disk is not None else 0


def resize_layout(
    layout: Layout,
    sizes: Mapping[str, int],
    mode: str = "proportional",
    used: Mapping[str, int] | None = None,
) -> tuple[Layout, list[str]]:
    """The layout for disks of these sizes (path -> bytes), and what was changed, one note
    each. `used` is the backup manifest's used bytes per file system component id: smaller
    disks are planned with it (without it, every file system keeps its size); TooSmall when
    the data does not fit."""
    layout = copy.deepcopy(layout)
    notes: list[str] = []
    grown: dict[str, float] = {}  # device path -> growth factor
    planned = mirror_sizes(layout, sizes)
    shrinker = Shrinker(layout, used or {})
    shortfalls = []
    for disk in layout.disks:
        new = planned.get(disk.path, disk.size)
        if new < disk.size:
            shortfall = shrinker.shrink_disk(disk, new)
            if shortfall is not None:
                shortfalls.append(shortfall)
        elif new > disk.size:
            before = disk.size
            grown.update(grow_disk(disk, new, mode, notes))
            if disk.table is None:
                grown[disk.path] = new / before
    if shortfalls:
        raise TooSmall(shortfalls)
    notes += [f"smaller disk: {note}" for note in shrinker.notes]
    if not grown:
        return layout, notes
    for md in layout.mds:
        members = [grown.get(m) for m in md.members]
        if members and all(members):
            grown[md.path] = min(f for f in members if f)
            md.size = None
    for luks in layout.luks:
        if luks.device in grown:
            grown[luks.path] = grown[luks.device]
    for vg in layout.vgs:
        pvs = [pv for pv in layout.pvs if pv.vg == vg.name]
        extra = sum(
            int((pv.size or 0) * (grown[pv.device] - 1)) for pv in pvs if pv.device in grown
        )
        for pv in pvs:
            if pv.device in grown and pv.size:
                pv.size = int(pv.size * grown[pv.device])
        if extra <= 0 or not vg.size:
            continue
        factor = (vg.size + extra) / vg.size
        vg.size += extra
        if mode != "proportional":
            notes.append(f"VG {vg.name}: {extra} bytes more, left free (RESIZE_PARTITIONS={mode})")
            continue
        for lv in layout.lvs:
            if lv.vg != vg.name or lv.segtype == "thin" or lv.origin:
                continue
            new = _align_down(int(lv.size * factor), vg.extent_size)
            if new > lv.size:
                notes.append(f"LV {lv.full_name}: {lv.size} -> {new} bytes")
                grown[lv.path] = new / lv.size
                grown[f"/dev/{lv.vg}/{lv.name}"] = grown[lv.path]
                lv.size = new
    for fs in layout.filesystems:
        if fs.device in grown:
            if fs.ext is not None:
                fs.ext.block_count = None  # mke2fs fills the grown device
            if fs.xfs is not None:
                fs.xfs.agcount = None  # mkfs.xfs picks the count for the new size
                fs.xfs.data_blocks = None
            if fs.size:
                fs.size = int(fs.size * grown[fs.device])
            notes.append(f"{fs.fstype} on {fs.device} fills its grown device")
    return layout, notes
