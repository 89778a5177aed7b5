"""Capture the machine's storage stack into a Layout.

lsblk gives the tree of block devices; each layer is then asked its own tool for the
parameters recreation needs (sfdisk for exact partition positions, mdadm, cryptsetup, LVM,
the file systems' tools). Runs the same on the host and inside the rescue system.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterable

from rescue_runtime.errors import MissingError, UsageError
from rescue_runtime.layout.capture_base import Devices
from rescue_runtime.layout.capture_disks import DiskLayers
from rescue_runtime.layout.capture_fs import FilesystemLayers
from rescue_runtime.layout.capture_mounts import MountLayers
from rescue_runtime.layout.capture_stacks import StackLayers
from rescue_runtime.layout.model import CaptureOptions, Layout
from rescue_runtime.layout.parse import findmnt, lsblk, tables
from rescue_runtime.layout.probe import DevicesChanged, Probe, SystemProbe
from rescue_runtime.layout.select import select


class Capture(DiskLayers, StackLayers, FilesystemLayers, MountLayers):
    """All the layers on one state; capture() calls them bottom up."""


# A device that goes away mid-capture changes what there is to capture: read it all again.
CAPTURE_TRIES = 3


def capture(
    root: str = "/",
    *,
    devices: Iterable[str] = (),
    exclude: Iterable[str] = (),
    exclude_disks: Iterable[str] = (),
    everything: bool = False,
    autoexclude: Iterable[str] = (),
    luks_header_dir: str | None = None,
    probe: Probe | None = None,
) -> Layout:
    """Capture the storage stack that `root`'s mounted file systems and swap depend on.

    `devices` limits the scan to these block devices (and what is built on them);
    `exclude` drops components by id or name pattern (a mount point, "/dev/sdb", a VG, an LV
    as "vg/lv") with everything built on them; `exclude_disks` names the backup or rescue
    media disks, never part of a layout; `everything` keeps devices on other disks too;
    `autoexclude` (AUTOEXCLUDE_PATH) leaves out file systems mounted below these paths.
    `luks_header_dir` (off by default) keeps LUKS header backups there.
    """
    options = CaptureOptions(
        root=root,
        devices=list(devices),
        exclude=list(exclude),
        exclude_disks=list(exclude_disks),
        everything=everything,
        autoexclude=list(autoexclude),
    )
    if not os.path.isdir(root):
        # Otherwise no mount lies below it and every disk would look removed.
        what = "is not a directory" if os.path.exists(root) else "does not exist"
        raise UsageError(
            f"The system root {root} {what}: the layout is captured from the mounts below it.",
            hint="Give --root the directory the system to capture is mounted on (default /).",
        )
    changed: DevicesChanged | None = None
    for _ in range(CAPTURE_TRIES):
        try:
            return _capture_once(options, probe or SystemProbe(), luks_header_dir)
        except DevicesChanged as exc:
            changed = exc
    raise MissingError(
        f"The block devices kept changing while the layout was captured ({CAPTURE_TRIES} "
        f"tries); the last change: {changed}",
        hint="Wait until no disk or loop device is being attached or detached, then run "
        "mkmedia again.",
    ) from changed


def _capture_once(options: CaptureOptions, probe: Probe, luks_header_dir: str | None) -> Layout:
    """One pass over the machine's devices, bottom up."""
    root = options.root
    cap = Capture(probe, root, luks_header_dir)
    listing = ["lsblk", "-J", "-b", "-O", *options.devices]
    out = cap.probe.tool(listing, what="listing block devices")
    if out is None:
        raise MissingError(
            "lsblk (util-linux) is needed to capture the disk layout.",
            hint="Install util-linux and run mkmedia again.",
        )
    devs = Devices(lsblk.parse(out))
    cap.probe_signatures(devs)
    live_text = cap.probe.tool(
        ["findmnt", "-J", "-l", "-b", "-o", findmnt.COLUMNS], what="listing mounts"
    )
    if live_text is not None:
        live = findmnt.parse(live_text)
    else:
        cap.note("findmnt is missing: mounts read from /proc/self/mounts.")
        live = [
            findmnt.LiveMount(source=e.spec, target=e.file, fstype=e.vfstype, options=e.options)
            for e in tables.parse_fstab(cap.probe.read("/proc/self/mounts") or "")
        ]
    layout = cap.layout
    layout.hostname = socket.gethostname()
    layout.captured_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    cap.disks(devs)
    cap.multipaths(devs)
    cap.mds(devs)
    cap.luks(devs)
    cap.lvm(devs)
    cap.filesystems(devs, live)
    cap.mounts(devs, live)
    cap.boot()
    layout.options = options
    select(layout, options)
    cap.unopened_signatures(devs)
    return layout
