"""Finalize: make the recreated and restored system under the target boot again.

First the restored configuration follows the new hardware: device names and changed UUIDs
(finalize_rewrite.py), network cards (finalize_network.py). Then, with /proc, /sys, /dev,
/run (and efivarfs on UEFI) bound into the target: the LUKS keys
(finalize_luks.py), the boot loader and grub.cfg (finalize_boot.py), the initramfs (rebuilt
for a changed file it embeds or a root disk driver it lacks: finalize_initramfs.py), SELinux
relabelling, mount points and the logs (finalize_system.py). The binds this run made are
undone at the end, also after a failure; those an earlier mountonly made stay.

Time matters under emulation: update-initramfs there takes more than 15 minutes, so the
common case (recreate kept every UUID) rebuilds nothing and says why.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rescue_runtime import signals
from rescue_runtime.layout.model import Layout
from rescue_runtime.recover import report
from rescue_runtime.recover.activate import BINDS, OWN_MOUNTS, mounted_paths, under
from rescue_runtime.recover.finalize_boot import (
    EFIVARS,
    entries_to_write,
    install_boot_loader,
    update_grub_config,
)
from rescue_runtime.recover.finalize_initramfs import driver_reasons
from rescue_runtime.recover.finalize_luks import LuksKeys, luks_key_problems
from rescue_runtime.recover.finalize_network import NicMapping, finalize_network, present_nics
from rescue_runtime.recover.finalize_rewrite import rewrite_references, uuid_changes
from rescue_runtime.recover.finalize_system import (
    copy_logs,
    mount_point_permissions,
    rebuild_initramfs,
    request_relabel,
)
from rescue_runtime.run import run

__all__ = ["FinalizeRequest", "finalize", "finalize_programs", "luks_key_problems"]

log = logging.getLogger("mkmedia.finalize")


@dataclass
class FinalizeRequest:
    layout: Layout  # the saved layout
    target: Path  # the recreated and restored system, all mounted
    key_dir: Path  # the recreate script's KEY_DIR: <luks name>.key = temporary key
    logs: list[Path]  # copied to target/var/log/mkmedia/
    ask: Callable[[str, str], str] | None  # (question, default) -> answer; None: unattended
    changed: list[str]  # why the initramfs may need rebuilding (empty: nothing changed)
    mapped: dict[str, str] = field(default_factory=dict)  # old device path -> new (mapping)
    nics: NicMapping = field(default_factory=NicMapping)  # old MAC -> new (verify's)


def finalize_programs(layout: Layout) -> list[str]:
    """The rescue system's programs finalize runs (the boot loader tools are the restored
    system's own, run in a chroot)."""
    programs = ["mount", "umount", "chroot", "findmnt", "blkid", "lsblk"]
    if layout.luks:
        programs.append("cryptsetup")
    if layout.boot.firmware == "uefi" and entries_to_write(layout):
        programs.append("efibootmgr")
    return programs


def bind_sources(efi: bool) -> list[str]:
    return [*BINDS, EFIVARS] if efi else list(BINDS)


@contextlib.contextmanager
def bound(target: Path, say: Callable[[str], None]) -> Iterator[None]:
    """The pseudo file systems bound into the target for the chroot; only those not bound
    yet (by mountonly) are bound, and only those are undone, newest first."""
    made: list[str] = []
    try:
        before = set(mounted_paths())
        for source in bind_sources(os.path.isdir("/sys/firmware/efi")):
            path = under(str(target), source)
            if path in before or (source in OWN_MOUNTS and source not in before):
                continue  # bound already, or a sub-mount the rescue system does not have
            os.makedirs(path, exist_ok=True)
            if source == EFIVARS:
                argv = ["mount", "-t", "efivarfs", "efivarfs", path]
            else:
                argv = ["mount", "--bind", source, path]
            run(argv, what=f"binding {source} into {target}")
            made.append(path)
        say(f"bound {', '.join(made) or 'nothing (already bound)'}")
        yield
    finally:
        with signals.shielded():
            for path in reversed(made):
                if not run(["umount", path], check=False).ok:
                    run(["umount", "--lazy", path], check=False)


def finalize(request: FinalizeRequest) -> list[str]:
    """Run every finalize part in order; returns the notes (each also logged)."""
    notes: list[str] = []

    def note(items: list[str]) -> None:
        for item in items:
            (log.warning if item.startswith("WARNING") else log.info)("%s", item)
        notes.extend(items)

    target, layout = request.target, request.layout
    # names first: the LUKS keys and the boot loader read the rewritten crypttab and fstab
    rewrites = rewrite_references(layout, target, request.mapped, uuid_changes(layout))
    note(rewrites.notes)
    note(finalize_network(target, request.nics, present_nics()))
    with bound(target, lambda line: log.info("%s", line)):
        # lsinitramfs in a chroot; the mapped layout names the disks by their new paths
        drivers, driver_notes = driver_reasons(layout, target, set(request.mapped.values()))
        note(driver_notes)
        note(LuksKeys(layout, target, request.key_dir, request.ask).run())
        note(install_boot_loader(layout, target))
        grub = update_grub_config(layout, target, request.changed + rewrites.grub_reasons)
        reasons = request.changed + rewrites.initramfs_reasons + drivers
        initramfs = rebuild_initramfs(layout, target, reasons)
        for section, items in (("initramfs", driver_notes + initramfs), ("grub", grub)):
            for item in items:
                report.note(section, item)  # the decision and its reason, either way
        note(grub + initramfs)
    note(mount_point_permissions())
    note(request_relabel(target))
    note(copy_logs(request.logs, target))
    return notes
