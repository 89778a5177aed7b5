"""Recreating a layout on smaller disks: every component shrinks proportionally, but never
below what its data needs.

What a file system needs is the space it used at backup time (the backup manifest's
`used_bytes`) plus a margin of 10% and 64 MiB, and at least its own minimum (xfs 300 MiB, the
size recent xfsprogs accept; btrfs 256 MiB; ext2/3/4 16 MiB with its journal; vfat 64 MiB),
never more than it had. A file system without a record (not backed up, no manifest), a raw
LV or partition, a thin pool, a snapshot, a RAID level other than 1 or a multi-PV VG keeps
its original size. The needs add up through the stack: a LUKS volume adds its header, an MD
RAID1 member its superblock and data offset, a PV its metadata area, a partition rounds up
to whole MiB. Partitions that must shrink are packed from the first one's start at 1 MiB
alignment; the space is shared by water filling — each component gets the same fraction of
its old size, those that would fall below their need get their need — so the ESP, BIOS boot
and PReP partitions (fixed) and well-filled file systems keep more. The GPT backup header
goes to the disk's new end (sfdisk, last-lba unset). When the needs do not fit, `Shortfall`
holds the numbers per component and verify refuses before any write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rescue_runtime.layout.model import Disk, Layout, LogicalVolume, MdArray

MiB = 1 << 20
MARGIN_FRACTION = 0.10
MARGIN_BYTES = 64 * MiB
FS_MINIMUM = {
    "xfs": 300 * MiB,
    "btrfs": 256 * MiB,
    "ext2": 16 * MiB,
    "ext3": 16 * MiB,
    "ext4": 16 * MiB,
    "vfat": 64 * MiB,
}
SWAP_MINIMUM = 64 * MiB  # swap holds no data; it keeps a small useful size
FIXED_FLAGS = {"esp", "bios_grub", "prep", "msftres", "diag"}
LUKS_HEADER = {1: 2 * MiB, 2: 16 * MiB}  # cryptsetup's defaults when the layout has none
MD_OVERHEAD = 128 * MiB  # mdadm 1.2's largest data offset, when the layout has no array size
GPT_BACKUP_SECTORS = 34


def align_down(value: int, unit: int) -> int:
    return value // unit * unit


def align_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def mib(value: int) -> str:
    return f"{value / MiB:.0f} MiB"


def usable_end(disk: Disk, size: int) -> int:
    """Where partitions may end on a disk of `size` bytes (aligned to MiB)."""
    sector = disk.logical_sector_size or 512
    reserved = GPT_BACKUP_SECTORS * sector if disk.table == "gpt" else 0
    return align_down(size - reserved, MiB)


def share(sizes: list[int], needs: list[int], available: int, unit: int) -> list[int] | None:
    """New sizes (multiples of `unit`, none below its need, none above its old size) that add
    up to at most `available`; None when the needs alone do not fit. Water filling: every
    entry gets the same fraction of its old size unless its need is more."""
    if sum(sizes) <= available:
        return list(sizes)
    needs = [min(align_up(n, unit), s) for n, s in zip(needs, sizes, strict=True)]
    if sum(needs) > available:
        return None
    pinned: set[int] = set()
    while True:
        free = [i for i in range(len(sizes)) if i not in pinned]
        rest = available - sum(needs[i] for i in pinned)
        total = sum(sizes[i] for i in free)
        factor = rest / total if total else 0.0
        newly = {i for i in free if sizes[i] * factor < needs[i]}
        if not newly:
            break
        pinned |= newly
    return [
        needs[i] if i in pinned else max(needs[i], align_down(int(sizes[i] * factor), unit))
        for i in range(len(sizes))
    ]


@dataclass
class Need:
    id: str  # the layout component
    size: int  # its size in the saved layout
    need: int  # what it needs at least
    why: str  # how the need was found


@dataclass
class Shortfall:
    disk: str
    available: int
    needed: int
    parts: list[Need] = field(default_factory=list)

    def describe(self) -> str:
        items = "; ".join(
            f"{n.id} {mib(n.size)} -> needs {mib(n.need)} ({n.why})" for n in self.parts
        )
        return (
            f"{self.disk} offers {mib(self.available)} for partitions, the data needs "
            f"{mib(self.needed)} ({items})"
        )


class Shrinker:
    """The needs of one layout's components, and fitting them into smaller devices."""

    def __init__(self, layout: Layout, used: Mapping[str, int]) -> None:
        self.layout = layout
        self.used = used
        self.notes: list[str] = []
        self.needs: dict[str, Need] = {}
        # The saved sizes, read before anything changes: overheads are old size - old inner.
        paths = [d.path for d in layout.disks] + [p.path for p in layout.partitions()]
        paths += [lv.path for lv in layout.lvs] + [m.path for m in layout.mds]
        paths += [luks.path for luks in layout.luks]
        self._saved: dict[str, int | None] = {}
        for path in paths:
            self._saved[path] = self._current_size(path)
        self._vg_size = {vg.name: vg.size for vg in layout.vgs}
        self._md_over = {md.path: self._md_overhead(md) for md in layout.mds}

    # -- what a device holds, and its size in the saved layout --------------------------

    def _lvs_at(self, path: str) -> LogicalVolume | None:
        return next(
            (lv for lv in self.layout.lvs if path in (lv.path, f"/dev/{lv.vg}/{lv.name}")), None
        )

    def size_of(self, path: str) -> int | None:
        """The size in the saved layout (before this Shrinker changed anything)."""
        if path in self._saved:
            return self._saved[path]
        return self._current_size(path)

    def _current_size(self, path: str) -> int | None:
        for disk in self.layout.disks:
            if disk.path == path:
                return disk.size
            for part in disk.partitions:
                if part.path == path:
                    return part.size
        lv = self._lvs_at(path)
        if lv is not None:
            return lv.size
        for md in self.layout.mds:
            if md.path == path:
                if md.size:
                    return md.size
                members = [self._current_size(m) or 0 for m in md.members]
                return min(members) - MD_OVERHEAD if members else None
        for luks in self.layout.luks:
            if luks.path == path:
                outer = self.size_of(luks.device)
                return (
                    None
                    if outer is None
                    else outer - self._luks_header(luks.version, luks.data_offset)
                )
        return None

    @staticmethod
    def _luks_header(version: int, offset: int | None) -> int:
        return offset or LUKS_HEADER.get(version, 16 * MiB)

    def _md_overhead(self, md: MdArray) -> int:
        members = [self.size_of(m) for m in md.members]
        if md.size and all(members):
            return max(m for m in members if m) - md.size
        return MD_OVERHEAD

    # -- needs --------------------------------------------------------------------------

    def need(self, path: str) -> tuple[int, str]:
        """(bytes the device at `path` must have at least, why)."""
        size = self.size_of(path) or 0
        layout = self.layout
        fs = layout.filesystem(path)
        if fs is not None:
            if fs.fstype == "swap":
                return min(size, SWAP_MINIMUM), "swap"
            used = self.used.get(fs.id)
            if used is None or (fs.btrfs is not None and len(fs.btrfs.devices) > 1):
                return size, f"{fs.fstype}: used space unknown, kept"
            margin = int(used * MARGIN_FRACTION) + MARGIN_BYTES
            minimum = FS_MINIMUM.get(fs.fstype, 0)
            wanted = max(used + margin, minimum)
            return min(size, wanted), (
                f"{fs.fstype} used {mib(used)} + margin {mib(margin)}, minimum {mib(minimum)}"
            )
        for md in layout.mds:
            if path in md.members:
                if md.level != "raid1":
                    return size, f"MD {md.level} member: kept"
                inner, why = self.need(md.path)
                overhead = self._md_over[md.path]
                return inner + overhead, f"RAID1 {md.path} + {mib(overhead)} superblock; {why}"
        for luks in layout.luks:
            if luks.device == path:
                inner, why = self.need(luks.path)
                header = self._luks_header(luks.version, luks.data_offset)
                return inner + header, f"LUKS {luks.name} + {mib(header)} header; {why}"
        for pv in layout.pvs:
            if pv.device == path:
                return self._pv_need(path, size)
        lv = self._lvs_at(path)
        if lv is None:
            return size, "no file system of the backup on it: kept"
        return size, "content unknown: kept"

    def _pv_need(self, path: str, size: int) -> tuple[int, str]:
        pv = next(p for p in self.layout.pvs if p.device == path)
        vg = next((v for v in self.layout.vgs if v.name == pv.vg), None)
        vg_size = self._vg_size.get(pv.vg or "")
        if vg is None or len(vg.pvs) != 1 or not vg_size:
            return size, "PV of a VG on several PVs: kept"
        overhead = size - vg_size
        total = 0
        for lv in self._vg_lvs(vg.name):
            total += align_up(self._lv_need(lv), vg.extent_size)
        return overhead + total, f"PV of VG {vg.name}: its LVs + {mib(overhead)} metadata"

    def _vg_lvs(self, vg: str) -> list[LogicalVolume]:
        return [lv for lv in self.layout.lvs if lv.vg == vg and lv.segtype != "thin"]

    @staticmethod
    def _shrinkable_lv(lv: LogicalVolume) -> bool:
        return lv.segtype in ("linear", "striped") and not lv.origin

    def _lv_need(self, lv: LogicalVolume) -> int:
        if not self._shrinkable_lv(lv):
            need, why = lv.size, f"{lv.segtype} LV: kept"
        else:
            need, why = self.need(lv.path)
        self.needs[lv.id] = Need(lv.id, lv.size, need, why)
        return need

    # -- fitting ------------------------------------------------------------------------

    def fit(self, path: str, new: int) -> None:
        """Make what sits on the device at `path` fit its new size `new` (smaller or equal)."""
        layout = self.layout
        fs = layout.filesystem(path)
        if fs is not None:
            if fs.size is None or new < fs.size:
                fs.size = new
                if fs.ext is not None:
                    fs.ext.block_count = None  # mke2fs fills the smaller device
                if fs.xfs is not None:
                    fs.xfs.agcount = None
                    fs.xfs.data_blocks = None
                self.notes.append(f"{fs.fstype} on {fs.device} is made for {mib(new)}")
            return
        for md in layout.mds:
            if path in md.members and md.level == "raid1":
                size = new - self._md_over[md.path]
                if md.size is None or size < md.size:
                    md.size = size
                    self.fit(md.path, size)
                return
        for luks in layout.luks:
            if luks.device == path:
                self.fit(luks.path, new - self._luks_header(luks.version, luks.data_offset))
                return
        for pv in layout.pvs:
            if pv.device == path:
                self._fit_pv(path, new)
                return

    def _fit_pv(self, path: str, new: int) -> None:
        pv = next(p for p in self.layout.pvs if p.device == path)
        vg = next((v for v in self.layout.vgs if v.name == pv.vg), None)
        old, saved_vg = self.size_of(path), self._vg_size.get(pv.vg or "")
        if vg is None or not vg.size or not saved_vg or old is None:
            return
        overhead = old - saved_vg
        vg_size = align_down(new - overhead, vg.extent_size)
        if pv.size:
            pv.size -= old - new
        self.notes.append(f"VG {vg.name}: {mib(vg.size)} -> {mib(vg_size)}")
        vg.size = vg_size
        lvs = self._vg_lvs(vg.name)
        needs = [self._lv_need(lv) for lv in lvs]
        sizes = share([lv.size for lv in lvs], needs, vg_size, vg.extent_size)
        assert sizes is not None  # the need of the PV was checked before
        for lv, size in zip(lvs, sizes, strict=True):
            if size < lv.size:
                self.notes.append(f"LV {lv.full_name}: {mib(lv.size)} -> {mib(size)}")
                lv.size = size
                self.fit(lv.path, size)

    # -- disks --------------------------------------------------------------------------

    def shrink_disk(self, disk: Disk, new_size: int) -> Shortfall | None:
        """Fit `disk`'s partitions into `new_size` bytes; the numbers when they cannot."""
        old_size, parts = disk.size, sorted(disk.partitions, key=lambda p: p.start)
        if disk.table is None:
            need, why = self.need(disk.path)
            if need > new_size:
                return Shortfall(disk.path, new_size, need, [Need(disk.id, old_size, need, why)])
            disk.size = new_size
            self.fit(disk.path, new_size)
            return None
        end = usable_end(disk, new_size)
        disk.size, disk.last_lba = new_size, None  # the backup GPT goes to the new end
        if not parts or parts[-1].start + parts[-1].size <= end:
            self.notes.append(f"{disk.path}: {mib(new_size)}, its partitions fit as they are")
            return None
        if any(p.kind in ("extended", "logical") for p in parts):
            need = parts[-1].start + parts[-1].size
            why = "MBR logical partitions are not shrunk (not built yet): kept"
            return Shortfall(disk.path, end, need, [Need(disk.id, old_size, need, why)])
        first = parts[0].start
        needs: list[Need] = []
        before = set(self.needs)
        for part in parts:
            if FIXED_FLAGS & set(part.flags):
                need, why = part.size, f"{'/'.join(sorted(FIXED_FLAGS & set(part.flags)))}: fixed"
            else:
                need, why = self.need(part.path)
            needs.append(Need(part.id, part.size, align_up(need, MiB), why))
        sizes = share(
            [align_up(p.size, MiB) for p in parts], [n.need for n in needs], end - first, MiB
        )
        if sizes is None:
            inner = [n for key, n in self.needs.items() if key not in before]  # LVs
            return Shortfall(disk.path, end - first, sum(n.need for n in needs), needs + inner)
        start = first
        for part, size in zip(parts, sizes, strict=True):
            size = min(size, part.size)  # a fixed partition of odd size keeps it exactly
            if size < part.size:
                self.notes.append(f"partition {part.path}: {mib(part.size)} -> {mib(size)}")
                self.fit(part.path, size)
            part.start, part.size = start, size
            start = align_up(start + size, MiB)
        return None
