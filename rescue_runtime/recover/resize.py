"""Recreating a layout on larger disks: partitions, VGs, LVs and file systems grow with them.

RESIZE_PARTITIONS says how a larger disk's new space is shared: `proportional` (every
partition but the small fixed ones — ESP, BIOS boot, PReP — grows by its share), `last` (the
last partition takes it all) or `none` (the new space stays free). Partitions after a grown
one move by whole MiB, so 1 MiB alignment stays. Whatever sits on a grown partition follows:
an MD array or LUKS volume fills it, a PV fills it and its VG's LVs grow proportionally (in
`proportional` mode; in whole extents), and a file system made on a grown device fills it
instead of keeping its old block count. Disks smaller than the layout are refused in verify.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from rescue_runtime.layout.model import Disk, Layout

MiB = 1 << 20
MODES = ("proportional", "last", "none")
FIXED_FLAGS = {"esp", "bios_grub", "prep", "msftres", "diag"}
GPT_BACKUP_SECTORS = 34  # the backup header and its entries at the disk's end


def _align_down(value: int, unit: int) -> int:
    return value // unit * unit


def usable_end(disk: Disk, size: int) -> int:
    """Where partitions may end on a disk of `size` bytes (aligned to MiB)."""
    sector = disk.logical_sector_size or 512
    reserved = GPT_BACKUP_SECTORS * sector if disk.table == "gpt" else 0
    return _align_down(size - reserved, MiB)


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


def resize_layout(
    layout: Layout, sizes: Mapping[str, int], mode: str = "proportional"
) -> tuple[Layout, list[str]]:
    """The layout for disks of these sizes (path -> bytes; only larger ones change it), and
    what was changed, one note each."""
    layout = copy.deepcopy(layout)
    notes: list[str] = []
    grown: dict[str, float] = {}  # device path -> growth factor
    for disk in layout.disks:
        new = sizes.get(disk.path, disk.size)
        if new > disk.size:
            before = disk.size
            grown.update(grow_disk(disk, new, mode, notes))
            if disk.table is None:
                grown[disk.path] = new / before
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
