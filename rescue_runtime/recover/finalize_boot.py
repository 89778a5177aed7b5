"""Finalize, the boot loader: what layout.boot says the source booted with, made real again.

BIOS: GRUB2 goes onto every disk whose first sector held it (both disks of a mirrored
/boot), by the restored system's own grub-install in a chroot, and Debian's debconf answer
for grub-pc follows (finalize_debconf.py). UEFI: the ESP's files came
back with the restore (it is a mounted file system); the firmware entry is written again by
the ESP's disk and partition number (found from the entry's PARTUUID) with the same label
and loader, first in BootOrder; every other ESP of a mirrored machine gets the mounted one's
content. grub-mkconfig runs only when a UUID the restored grub.cfg names has changed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rescue_runtime.atomic import copy_file
from rescue_runtime.errors import MissingError
from rescue_runtime.layout.model import EfiEntry, Layout, Mount, Partition
from rescue_runtime.layout.parse.efibootmgr import parse as parse_efibootmgr
from rescue_runtime.recover.activate import under
from rescue_runtime.recover.finalize_debconf import follow_grub_disks
from rescue_runtime.recover.finalize_rewrite import live_links
from rescue_runtime.run import SYSTEM_PATH, run

EFIVARS = "/sys/firmware/efi/efivars"
# Where the restored system's programs may be (chroot's view).
TARGET_PATH = SYSTEM_PATH
GRUB_CFG = {"grub-mkconfig": "/boot/grub/grub.cfg", "grub2-mkconfig": "/boot/grub2/grub.cfg"}


def target_program(target: Path, *names: str) -> str | None:
    """The first of `names` the restored system has, as its chroot sees it (a symlink counts:
    an absolute one points into the target, not into the rescue system)."""
    for name in names:
        for directory in TARGET_PATH:
            path = f"{directory}/{name}"
            if os.path.lexists(under(str(target), path)):
                return path
    return None


def grub_disks(layout: Layout) -> list[str]:
    """The disks whose first sector held GRUB2 (each once, in layout order)."""
    held = {loader.location for loader in layout.boot.loaders if loader.kind == "grub2-bios"}
    return [disk.path for disk in layout.disks if disk.path in held]


def install_bios(layout: Layout, target: Path) -> list[str]:
    disks = grub_disks(layout)
    if not disks:
        return [
            "WARNING: the layout records no disk with BIOS boot code, so no boot loader was "
            "installed; install one by hand (chroot into the target, grub-install DISK)."
        ]
    grub_install = target_program(target, "grub-install", "grub2-install")
    if grub_install is None:
        raise MissingError(
            f"The restored system under {target} has no grub-install (nor grub2-install), so "
            f"GRUB cannot be written to {', '.join(disks)}.",
            hint="Check that the backup holds the grub packages (grub-pc), or install a boot "
            "loader by hand from a chroot; then run `mkmedia finalizeonly` again.",
        )
    notes = []
    for disk in disks:
        run(
            ["chroot", str(target), grub_install, "--target=i386-pc", disk],
            what=f"installing GRUB on {disk}",
        )
        notes.append(f"GRUB installed on {disk} ({grub_install} of the restored system)")
    # Debian's grub-pc reinstalls GRUB on its upgrades where debconf says: there, from now on
    return notes + follow_grub_disks(target, disks, live_links())


# -- UEFI -------------------------------------------------------------------------------------
def loader_key(loader: str | None) -> str:
    """Loader paths compare as the firmware does: case-insensitive, either slash."""
    return (loader or "").replace("/", "\\").lstrip("\\").lower()


def entries_to_write(layout: Layout) -> list[tuple[EfiEntry, Partition]]:
    """The source's firmware entries that boot a loader on one of its ESPs, in BootOrder."""
    esps = {(p.uuid or "").lower(): p for p in layout.esps() if p.uuid}
    rank = {number: i for i, number in enumerate(layout.boot.boot_order)}
    found = [
        (entry, esps[(entry.partition_uuid or "").lower()])
        for entry in layout.boot.efi_entries
        if entry.loader and (entry.partition_uuid or "").lower() in esps
    ]
    return sorted(found, key=lambda pair: rank.get(pair[0].number, len(rank)))


def live_partition(partuuid: str, saved: Partition) -> tuple[str, int]:
    """The disk and partition number carrying this PARTUUID now (udev's link and sysfs),
    else where the layout had it."""
    link = Path("/dev/disk/by-partuuid") / partuuid.lower()
    if link.exists():
        name = os.path.basename(os.path.realpath(link))
        sys_part = Path("/sys/class/block") / name
        with contextlib.suppress(OSError, ValueError):
            number = int((sys_part / "partition").read_text())
            disk = os.path.basename(os.path.realpath(sys_part / ".."))
            return f"/dev/{disk}", number
    return saved.disk, saved.number


def efibootmgr_create_args(entry: EfiEntry, disk: str, number: int) -> list[str]:
    """The command that writes this entry again (efibootmgr puts a new entry first)."""
    return [
        "efibootmgr", "--create", "--disk", disk, "--part", str(number),
        "--label", entry.label, "--loader", entry.loader or "",
    ]  # fmt: skip


def current_entries() -> tuple[list[EfiEntry], list[str]]:
    boot = parse_efibootmgr(run(["efibootmgr", "-v"], what="reading the EFI boot entries").stdout)
    return boot.entries, boot.order


def matching(entries: list[EfiEntry], wanted: EfiEntry) -> EfiEntry | None:
    return next(
        (
            e
            for e in entries
            if (e.partition_uuid or "").lower() == (wanted.partition_uuid or "").lower()
            and loader_key(e.loader) == loader_key(wanted.loader)
        ),
        None,
    )


def boot_order(first: list[str], order: list[str]) -> list[str]:
    return first + [number for number in order if number not in first]


def write_efi_entries(layout: Layout) -> list[str]:
    wanted = entries_to_write(layout)
    if not wanted:
        return ["the source had no firmware boot entry on its ESPs: none written"]
    if not os.path.isdir(EFIVARS) or not os.listdir(EFIVARS):
        return [
            "WARNING: the rescue system did not boot through UEFI (no EFI variables), so the "
            f"firmware boot entries ({', '.join(e.label for e, _ in wanted)}) were not "
            "written; the removable fallback path must boot the machine."
        ]
    entries, order = current_entries()
    notes, numbers = [], []
    for entry, esp in wanted:
        found = matching(entries, entry)
        if found is None:
            disk, number = live_partition(entry.partition_uuid or "", esp)
            run(efibootmgr_create_args(entry, disk, number), what=f"writing {entry.label!r}")
            entries, order = current_entries()
            found = matching(entries, entry)
            if found is None:
                notes.append(f"WARNING: efibootmgr did not keep the entry {entry.label!r}")
                continue
            notes.append(f"EFI boot entry Boot{found.number} {entry.label!r} written")
        else:
            notes.append(f"EFI boot entry Boot{found.number} {entry.label!r} was there already")
        numbers.append(found.number)
    if numbers and order[: len(numbers)] != numbers:
        new_order = boot_order(numbers, order)
        run(["efibootmgr", "--bootorder", ",".join(new_order)], what="setting BootOrder")
        notes.append(f"BootOrder {','.join(new_order)}")
    return notes


def mounted_esp(layout: Layout) -> tuple[Partition, Mount] | None:
    for esp in layout.esps():
        mount = next(
            (m for m in layout.mounts if m.device == esp.path and m.fstype != "swap"), None
        )
        if mount is not None and not esp.unmounted:
            return esp, mount
    return None


def fallback_note(target: Path, mount: Mount) -> str:
    boot_dir = Path(under(str(target), mount.mountpoint)) / "EFI" / "BOOT"
    found = sorted(boot_dir.glob("[Bb][Oo][Oo][Tt]*.[Ee][Ff][Ii]")) if boot_dir.is_dir() else []
    if found:
        return f"removable fallback path kept: {mount.mountpoint}/EFI/BOOT/{found[0].name}"
    return (
        f"the ESP ({mount.mountpoint}) has no removable fallback path \\EFI\\BOOT\\BOOT*.EFI "
        "(the source had none either): the firmware entry boots it"
    )


def mirror_esps(layout: Layout, esp: Partition) -> list[Partition]:
    """The other ESPs of a mirrored machine: the same partition type, mounted by nothing
    (marked `unmounted`, or kept by `layout save --all`, which marks nothing)."""
    mounted = {m.device for m in layout.mounts}
    return [
        p
        for p in layout.esps()
        if p.path != esp.path and p.type == esp.type and (p.unmounted or p.path not in mounted)
    ]


@contextlib.contextmanager
def mounted(device: str, fstype: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mkmedia-esp-") as directory:
        run(["mount", "-t", fstype, device, directory], what=f"mounting the ESP {device}")
        try:
            yield Path(directory)
        finally:
            run(["umount", directory], what=f"unmounting the ESP {device}")


def copy_tree(source: Path, dest: Path) -> int:
    """Every file of `source` into `dest` (content only: FAT keeps no owners or modes)."""
    count = 0
    for directory, dirs, files in os.walk(source):
        dirs.sort()
        rel = Path(directory).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            copy_file(Path(directory) / name, dest / rel / name)
            count += 1
    return count


def fill_mirror_esps(layout: Layout, target: Path) -> list[str]:
    found = mounted_esp(layout)
    if found is None:
        return []
    esp, mount = found
    notes = []
    source = Path(under(str(target), mount.mountpoint))
    for other in mirror_esps(layout, esp):
        fs = layout.filesystem(other.path)
        if fs is None or fs.fstype != "vfat":
            notes.append(f"WARNING: the second ESP {other.path} has no FAT file system: not filled")
            continue
        with mounted(other.path, fs.fstype) as dest:
            count = copy_tree(source, dest)
        notes.append(f"ESP {other.path} filled with the {count} files of {esp.path}")
    return notes


def install_uefi(layout: Layout, target: Path) -> list[str]:
    found = mounted_esp(layout)
    if found is None:
        return ["WARNING: the layout mounts no ESP: no UEFI boot loader checked or written"]
    notes = fill_mirror_esps(layout, target)
    notes += write_efi_entries(layout)
    notes.append(fallback_note(target, found[1]))
    return notes


def install_boot_loader(layout: Layout, target: Path) -> list[str]:
    if layout.boot.firmware == "uefi":
        return install_uefi(layout, target)
    return install_bios(layout, target)


def update_grub_config(layout: Layout, target: Path, changed: list[str]) -> list[str]:
    """grub-mkconfig only when something its grub.cfg names (a UUID) changed."""
    if not changed:
        return [
            "grub-mkconfig not run: every UUID is the one the restored grub.cfg names "
            "(recreate kept them all)"
        ]
    program = target_program(target, "grub-mkconfig", "grub2-mkconfig")
    if program is None:
        return [f"WARNING: {'; '.join(changed)}, but the restored system has no grub-mkconfig"]
    config = GRUB_CFG[os.path.basename(program)]
    run(["chroot", str(target), program, "-o", config], what="writing grub.cfg")
    return [f"grub-mkconfig wrote {config}: {'; '.join(changed)}"]
