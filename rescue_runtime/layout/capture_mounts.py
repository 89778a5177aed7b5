"""Capture's top layer: mounts and swap (fstab beside the live mounts) and boot entries."""

from __future__ import annotations

from rescue_runtime.layout import boot as boot_mod
from rescue_runtime.layout.capture_base import CaptureBase, Devices
from rescue_runtime.layout.model import Mount
from rescue_runtime.layout.parse import efibootmgr, findmnt, tables


def _mount(
    mountpoint: str,
    device: str,
    fstype: str,
    options: list[str],
    entry: tables.FstabEntry | None,
    *,
    fsroot: str = "/",
    mounted: bool = True,
) -> Mount:
    """A file system's mount, with what its fstab line (if any) says."""
    return Mount(
        mountpoint=mountpoint,
        device=device,
        fstype=fstype,
        options=options,
        fsroot=fsroot,
        fstab_spec=entry.spec if entry else None,
        fstab_options=entry.options if entry else None,
        mounted=mounted,
        dump=entry.freq if entry else 0,
        passno=entry.passno if entry else 0,
    )


class MountLayers(CaptureBase):
    """Mounts, swap and boot."""

    def mounts(self, devs: Devices, live: list[findmnt.LiveMount]) -> None:
        fstab = tables.parse_fstab(self.etc("fstab"))
        by_target = {e.file: e for e in fstab}
        root = self.root

        def inside(target: str) -> str | None:
            if root == "/":
                return target
            if target == root:
                return "/"
            if target.startswith(root + "/"):
                return target[len(root) :]
            return None

        seen: set[str] = set()
        for m in live:
            target = inside(m.target)
            dev = devs.resolve(m.source)
            if target is None or dev is None or target in seen:
                continue
            seen.add(target)
            entry = by_target.get(target)
            self.layout.mounts.append(
                _mount(target, dev.path, m.fstype, m.options, entry, fsroot=m.fsroot)
            )
        # Active swap devices (a swap file resolves to no device: the backup brings it back),
        # then the ones fstab names, each once under its canonical path.
        active: list[str] = []
        for name in tables.parse_proc_swaps(self.probe.read("/proc/swaps") or ""):
            swap_dev = devs.resolve(name)
            if swap_dev is not None and swap_dev.path not in active:
                active.append(swap_dev.path)
        swaps = list(active)
        for entry in fstab:
            dev = self.resolve_spec(devs, entry.spec)
            if entry.vfstype == "swap":
                if dev is not None and dev.path not in swaps:
                    swaps.append(dev.path)
            elif entry.file not in seen and dev is not None:
                seen.add(entry.file)
                self.layout.mounts.append(
                    _mount(entry.file, dev.path, entry.vfstype, entry.options, entry, mounted=False)
                )
        for swap in swaps:
            dev = devs.resolve(swap)
            if dev is None:
                continue
            entry = next(
                (
                    e
                    for e in fstab
                    if e.vfstype == "swap" and self.resolve_spec(devs, e.spec) is dev
                ),
                None,
            )
            self.layout.mounts.append(
                Mount(
                    mountpoint="swap",
                    device=dev.path,
                    fstype="swap",
                    options=entry.options if entry else [],
                    fstab_spec=entry.spec if entry else None,
                    mounted=swap in active,
                )
            )

    def boot(self) -> None:
        boot_mod.capture_boot(self.layout, self.probe, self.note, efibootmgr.parse)
