"""Finalize, the initramfs and the new controller: does the restored initramfs hold the
driver of the disk that now holds the root file system?

The driver chain comes from the rescue system's sysfs (the disk's device and every parent
with a bound driver: nvme, virtio_blk + virtio_pci, sd_mod + ahci, ...). A driver that the
restored kernel builds in, or that it does not know as a module, needs nothing. The
initramfs's file list comes from the restored system's own `lsinitramfs` in a chroot, else
from our own walk of its cpio archives: an uncompressed one first (early microcode), then a
gzip, xz or zstd compressed one.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
from collections.abc import Callable, Collection
from pathlib import Path

from rescue_runtime.errors import CommandError, MkmediaError
from rescue_runtime.layout.graph import build_graph
from rescue_runtime.layout.model import Disk, Layout
from rescue_runtime.recover.finalize_boot import target_program
from rescue_runtime.run import run, run_bytes, which

SYS_BLOCK = Path("/sys/block")
# The file systems the initramfs must mount before it hands over (Debian mounts /usr too).
EARLY_MOUNTS = ("/", "/usr")
NEWC = (b"070701", b"070702")
MODULE_SUFFIX = re.compile(r"\.ko(\.(gz|xz|zst|bz2|lz4))?$")
# Drivers named otherwise than their module, for a rescue kernel that builds them in (no
# module link in sysfs to read the name from).
DRIVER_MODULES = {"sd": "sd_mod", "sr": "sr_mod", "xhci_hcd": "xhci_pci"}
INITRAMFS_NAMES = ("initrd.img-{v}", "initramfs-{v}.img", "initrd-{v}.img", "initrd-{v}")


def module_name(name: str) -> str:
    """A module's name as modprobe compares it (dashes and underscores are the same)."""
    return MODULE_SUFFIX.sub("", os.path.basename(name)).replace("-", "_")


# -- the root disks and their drivers ---------------------------------------------------------
def early_disks(layout: Layout) -> list[Disk]:
    """The disks under the root file system (and a separate /usr), through any stack."""
    graph = build_graph(layout)
    wanted = [f"mount:{m}" for m in EARLY_MOUNTS if layout.mount(m) is not None]
    ids = graph.closure(wanted)
    return [node for i in ids if isinstance(node := graph.nodes[i], Disk)]


def disk_modules(disk: str, sys_block: Path = SYS_BLOCK) -> list[str]:
    """The drivers bound to the disk's device and its parents (nearest first), by module
    name: the module link when the driver is a module, else the driver's own name."""
    device = sys_block / os.path.basename(disk) / "device"
    if not device.exists():
        return []
    modules: list[str] = []
    path = Path(os.path.realpath(device))
    while path.name and path.name != "devices":
        driver = path / "driver"
        if driver.is_symlink():
            module = driver / "module"
            if module.is_symlink():
                name = os.path.basename(os.readlink(module))
            else:
                name = os.path.basename(os.readlink(driver))
                name = DRIVER_MODULES.get(name, name)
            name = name.replace("-", "_")
            if name not in modules:
                modules.append(name)
        path = path.parent
    return modules


# -- the restored kernel ----------------------------------------------------------------------
def kernel_versions(target: Path) -> list[str]:
    """The restored system's kernels that have both modules and an initramfs."""
    found = []
    for modules in ("lib/modules", "usr/lib/modules"):
        directory = target / modules
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            if entry.is_dir() and initramfs_of(target, entry.name) and entry.name not in found:
                found.append(entry.name)
    return found


def initramfs_of(target: Path, version: str) -> Path | None:
    for pattern in INITRAMFS_NAMES:
        path = target / "boot" / pattern.format(v=version)
        if path.is_file():
            return path
    return None


def kernel_modules(target: Path, version: str) -> tuple[set[str], set[str]]:
    """The restored kernel's loadable modules and its built-in ones, by name."""
    loadable: set[str] = set()
    builtin: set[str] = set()
    seen: set[str] = set()
    for base in ("lib/modules", "usr/lib/modules"):
        root = target / base / version
        if not root.is_dir() or os.path.realpath(root) in seen:
            continue  # merged /usr: /lib is /usr/lib
        seen.add(os.path.realpath(root))
        for _dir, _subdirs, files in os.walk(root):
            loadable.update(module_name(f) for f in files if MODULE_SUFFIX.search(f))
        listing = root / "modules.builtin"
        if listing.is_file():
            builtin.update(module_name(line) for line in listing.read_text().split())
    return loadable, builtin


# -- the initramfs's file list ----------------------------------------------------------------
def cpio_names(data: bytes, start: int = 0) -> tuple[list[str], int]:
    """The member names of the newc archives from `start` (several may follow each other,
    NUL-padded); returns them and where the first non-cpio data begins."""
    names: list[str] = []
    pos = start
    while True:
        while pos < len(data) and data[pos] == 0:
            pos += 1
        if data[pos : pos + 6] not in NEWC:
            return names, pos
        try:
            size = int(data[pos + 54 : pos + 62], 16)
            namesize = int(data[pos + 94 : pos + 102], 16)
        except ValueError as exc:
            raise ValueError(f"a broken cpio header at byte {pos}") from exc
        name_end = pos + 110 + namesize
        name = data[pos + 110 : name_end - 1].decode(errors="replace")
        pos = name_end + (4 - name_end % 4) % 4
        pos += size + (4 - size % 4) % 4
        if name != "TRAILER!!!":
            names.append(name)


def decompress(data: bytes, what: str) -> bytes:
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if data.startswith(b"\xfd7zXZ") or data.startswith(b"\x5d\x00\x00"):
        return lzma.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        if which("zstd") is None:
            raise MkmediaError(f"{what} is zstd-compressed and this system has no zstd.")
        return run_bytes(["zstd", "-dc"], input=data, what=f"unpacking {what}")
    raise MkmediaError(f"{what}: a compression mkmedia does not unpack ({data[:4].hex()}).")


def walk_initramfs(path: Path) -> list[str]:
    """Every member name of an initramfs: its cpio parts, compressed or not."""
    data = path.read_bytes()
    names, pos = cpio_names(data)
    if pos < len(data):  # the compressed main archive comes last
        part = decompress(data[pos:], str(path))
        more, end = cpio_names(part)
        if end < len(part):
            raise MkmediaError(f"{path}: data after its compressed cpio archive ({end} bytes in)")
        names += more
    return names


def lsinitramfs(target: Path, path: Path) -> list[str] | None:
    """The restored system's own listing (chroot), None when it has no lsinitramfs."""
    program = target_program(target, "lsinitramfs")
    if program is None:
        return None
    inside = "/" + str(path.relative_to(target))
    result = run(
        ["chroot", str(target), program, inside], check=False, what="listing the initramfs"
    )
    return result.stdout.splitlines() if result.ok else None


Lister = Callable[[Path, Path], list[str]]


def initramfs_files(target: Path, path: Path) -> list[str]:
    listed = lsinitramfs(target, path)
    return walk_initramfs(path) if listed is None else listed


# -- the decision -----------------------------------------------------------------------------
def transport(disk: str) -> str | None:
    """How the disk is attached now (lsblk's TRAN: nvme, sata, virtio, ...)."""
    result = run(["lsblk", "-dno", "TRAN", disk], check=False, what=f"reading {disk}'s transport")
    return result.stdout.strip() or None if result.ok else None


def unchanged_disks(
    disks: list[Disk], renamed: Collection[str], transport_of: Callable[[str], str | None]
) -> str | None:
    """The transport when every disk keeps its name and the transport it was saved with
    (the same controller kind, so the restored initramfs already drove it); else None."""
    kinds = set()
    for disk in disks:
        if disk.path in renamed or not disk.transport or transport_of(disk.path) != disk.transport:
            return None
        kinds.add(disk.transport)
    return ", ".join(sorted(kinds)) or None


def driver_reasons(
    layout: Layout,
    target: Path,
    renamed: Collection[str] = (),
    *,
    sys_block: Path = SYS_BLOCK,
    lister: Lister = initramfs_files,
    transport_of: Callable[[str], str | None] = transport,
) -> tuple[list[str], list[str]]:
    """(reasons to rebuild, notes) for the drivers of the disks the root file system is on;
    `renamed`: the disks the mapping put under another name (the mapped layout's paths)."""
    disks = early_disks(layout)
    same = unchanged_disks(disks, renamed, transport_of)
    if same:
        # listing the initramfs costs tens of seconds under emulation: only for a new one
        return [], [f"initramfs drivers: the root disks keep their names and transport ({same})"]
    wanted: dict[str, list[str]] = {}
    for disk in disks:
        for module in disk_modules(disk.path, sys_block):
            wanted.setdefault(module, []).append(disk.path)
    if not wanted:
        return [], ["initramfs drivers: the root disk's driver is not known here (no sysfs entry)"]
    reasons, notes = [], []
    for version in kernel_versions(target):
        loadable, builtin = kernel_modules(target, version)
        needed = sorted(m for m in wanted if m in loadable and m not in builtin)
        image = initramfs_of(target, version)
        assert image is not None  # kernel_versions found it
        if not needed:
            notes.append(
                f"initramfs drivers: kernel {version} builds in (or has no module for) "
                f"{', '.join(sorted(wanted))}: nothing to add"
            )
            continue
        try:
            present = {module_name(n) for n in lister(target, image) if MODULE_SUFFIX.search(n)}
        except (OSError, ValueError, MkmediaError, CommandError) as exc:
            reasons.append(f"the initramfs {image.name} cannot be read ({exc})")
            continue
        missing = [m for m in needed if m not in present]
        holding = ", ".join(sorted({d for m in needed for d in wanted[m]}))
        if missing:
            reasons.append(
                f"the initramfs {image.name} lacks {', '.join(missing)}, the driver of {holding}"
            )
        else:
            notes.append(f"initramfs drivers: {image.name} has {', '.join(needed)} ({holding})")
    return reasons, notes
