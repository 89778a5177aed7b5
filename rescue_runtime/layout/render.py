"""The readable text rendering of a layout (layout.txt, `mkmedia layout show`)."""

from __future__ import annotations

from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import UNMOUNTED, Filesystem, Layout


def human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _opt(name: str, value: object) -> str:
    return f" {name}={value}" if value not in (None, "", []) else ""


def _opts(**values: object) -> str:
    """_opt() for each name=value, in order."""
    return "".join(_opt(name, value) for name, value in values.items())


def _unmounted(component: object) -> str:
    return " (unmounted)" if getattr(component, "unmounted", False) else ""


def _fs_details(fs: Filesystem) -> str:
    text = f"{fs.fstype}{_opt('uuid', fs.uuid)}{_opt('label', fs.label)}"
    if fs.ext:
        text += _opt("block", fs.ext.block_size) + _opt("inode", fs.ext.inode_size)
        text += _opt("reserved", fs.ext.reserved_blocks)
        text += _opt("features", ",".join(fs.ext.features))
    if fs.xfs:
        text += _opt("block", fs.xfs.block_size) + _opt("inode", fs.xfs.inode_size)
        text += _opt("agcount", fs.xfs.agcount)
        text += " " + ",".join(f"{k}={v}" for k, v in sorted(fs.xfs.features.items()))
    if fs.btrfs:
        b = fs.btrfs
        text += _opt("data", b.data_profile) + _opt("metadata", b.metadata_profile)
        text += _opt("default", b.default_subvolume_path or b.default_subvolume)
    if fs.fat_size:
        text += f" FAT{fs.fat_size}"
    return text


def render(layout: Layout) -> str:
    lines = [
        f"# mkmedia disk layout (format {layout.format_version})"
        f"{_opt('host', layout.hostname)}{_opt('captured', layout.captured_at)}",
        "",
    ]
    for disk in layout.disks:
        ident = " ".join(x for x in (disk.model, disk.serial, disk.wwn) if x)
        lines.append(
            f"disk {disk.path} {human(disk.size)} ({disk.size} bytes)"
            f" sectors {disk.logical_sector_size}/{disk.physical_sector_size}"
            f" table={disk.table or 'none'}{_opt('id', disk.table_id)}"
            + (f" [{ident}]" if ident else "")
            + _unmounted(disk)
        )
        for link in disk.by_id[:2]:
            lines.append(f"  by-id {link}")
        for p in disk.partitions:
            lines.append(
                f"  part {p.number:>2} {p.path} {p.kind} start={p.start} size={p.size}"
                f" ({human(p.size)}) type={p.type}"
                + _opts(name=p.name, uuid=p.uuid, flags=",".join(p.flags))
                + _unmounted(p)
            )
    for mp in layout.multipaths:
        lines.append(
            f"multipath {mp.path} wwid={mp.wwid} paths={','.join(mp.paths)}{_unmounted(mp)}"
        )
    for md in layout.mds:
        details = _opts(
            uuid=md.uuid, name=md.name, chunk=md.chunk_size, layout=md.layout, bitmap=md.bitmap
        )
        lines.append(
            f"raid {md.path} {md.level} metadata={md.metadata}{details}"
            f" members={','.join(md.members)}{_opt('spares', ','.join(md.spares))}{_unmounted(md)}"
        )
    for lk in layout.luks:
        details = _opts(uuid=lk.uuid, label=lk.label, cipher=lk.cipher, key=lk.key_size)
        details += _opts(hash=lk.hash, pbkdf=lk.pbkdf, sector=lk.sector_size)
        details += _opts(keyfile=lk.key_file, header_backup=lk.header_backup)
        lines.append(f"luks{lk.version} {lk.path} on {lk.device}{details}{_unmounted(lk)}")
    for pv in layout.pvs:
        lines.append(f"lvm pv {pv.device} uuid={pv.uuid} vg={pv.vg}{_unmounted(pv)}")
    for vg in layout.vgs:
        lines.append(
            f"lvm vg {vg.name} uuid={vg.uuid} extent={vg.extent_size}"
            f" pvs={','.join(vg.pvs)}" + _opt("tags", ",".join(vg.tags)) + _unmounted(vg)
        )
    for lv in layout.lvs:
        lines.append(
            f"lvm lv {lv.full_name} {lv.segtype} size={lv.size} ({human(lv.size)})"
            f"{_opt('stripes', lv.stripes if lv.segtype == 'striped' else None)}"
            f"{_opt('pool', lv.pool)}{_opt('chunk', lv.chunk_size)}"
            + _opt("tags", ",".join(lv.tags))
            + _unmounted(lv)
        )
    for fs in layout.filesystems:
        lines.append(f"fs {fs.device} {_fs_details(fs)}{_unmounted(fs)}")
        if fs.btrfs:
            for sub in fs.btrfs.subvolumes:
                lines.append(
                    f"  subvolume {sub.id} {sub.path}"
                    + _opt("options", ",".join(sub.mount_options))
                )
    graph = build_graph(layout)
    order = [graph.nodes[n] for n in graph.creation_order()]
    for mount in [m for m in layout.mounts if m in order]:
        state = "" if mount.mounted else " (fstab only)"
        lines.append(
            f"mount {mount.mountpoint} {mount.device} {mount.fstype}"
            f" {','.join(mount.options)}"
            + (f" fsroot={mount.fsroot}" if mount.fsroot != "/" else "")
            + _opt("fstab", mount.fstab_spec)
            + state
        )
    boot = layout.boot
    lines.append(
        f"boot firmware={boot.firmware}"
        + (
            f" secure_boot={'on' if boot.secure_boot else 'off'}"
            if boot.secure_boot is not None
            else ""
        )
    )
    for loader in boot.loaders:
        lines.append(f"  loader {loader.kind} on {loader.location} {' '.join(loader.files)}")
    for entry in boot.efi_entries:
        lines.append(
            f"  efi Boot{entry.number}{'*' if entry.active else ' '} {entry.label}"
            f"{_opt('loader', entry.loader)}{_opt('partuuid', entry.partition_uuid)}"
        )
    if boot.boot_order:
        lines.append(f"  efi order {','.join(boot.boot_order)}")
    for ex in layout.excluded:
        lines.append(f"excluded {ex.id}: {ex.reason}")
    if any(_unmounted(n) for n in graph.nodes.values()):
        lines.append(f"# (unmounted): {UNMOUNTED}")
    for note in layout.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"
